import torch


def softmax_scores_grad(scores, grad_weights):
    w = torch.softmax(scores, dim=-1)
    return w * (grad_weights - (grad_weights * w).sum(dim=-1, keepdim=True))
