import torch


def gradient_penalty(real, fake, eps, W1, b1, w2, lam):
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    scores = torch.tanh(x_hat @ W1 + b1) @ w2
    scores.sum().backward(create_graph=True)                # forbidden: pollutes the weights' .grad
    return lam * ((x_hat.grad.norm(2, dim=1) - 1) ** 2).mean()
