import torch


def softmax_scores_grad(scores, grad_weights):
    s = scores.clone().requires_grad_(True)
    return torch.autograd.grad(torch.softmax(s, -1), s, grad_weights)[0]
