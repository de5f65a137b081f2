import torch


def softmax_scores_grad(scores, grad_weights):
    # softmax over the wrong axis (columns instead of rows)
    w = torch.softmax(scores, dim=-2)
    return w * (grad_weights - (grad_weights * w).sum(dim=-2, keepdim=True))
