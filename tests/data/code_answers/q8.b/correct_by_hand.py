import torch


def gradient_penalty(real, fake, eps, W1, b1, w2, lam):
    # d critic / d x = W1 @ (w2 * (1 - tanh(z)^2)) per sample: differentiable w.r.t. the weights
    x_hat = eps * real + (1 - eps) * fake
    h = torch.tanh(x_hat @ W1 + b1)            # (B, H)
    grads = (w2 * (1 - h ** 2)) @ W1.T         # (B, D)
    return lam * ((grads.norm(dim=1) - 1) ** 2).mean()
