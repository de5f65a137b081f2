import torch


def gradient_penalty(real, fake, eps, W1, b1, w2, lam):
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    scores = torch.tanh(x_hat @ W1 + b1) @ w2
    (grads,) = torch.autograd.grad(scores.sum(), x_hat)     # no create_graph: penalty is a constant
    return lam * ((grads.norm(2, dim=1) - 1) ** 2).mean()
