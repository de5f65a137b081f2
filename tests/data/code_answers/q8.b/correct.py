import torch


def gradient_penalty(real, fake, eps, W1, b1, w2, lam):
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    scores = torch.tanh(x_hat @ W1 + b1) @ w2
    (grads,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return lam * ((grads.norm(2, dim=1) - 1) ** 2).mean()
