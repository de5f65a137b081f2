import torch


def softmax_scores_grad(scores, grad_weights):
    # keeps only the diagonal of the softmax Jacobian, w (1 - w)
    w = torch.softmax(scores, dim=-1)
    return grad_weights * w * (1 - w)
