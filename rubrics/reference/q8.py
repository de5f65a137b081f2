"""Reference for q8.b: the WGAN-GP gradient penalty for a small MLP critic.

critic(x) = tanh(x @ W1 + b1) @ w2, one score per row of x (B, D).
x_hat = eps * real + (1 - eps) * fake with eps of shape (B, 1);
penalty = lam * mean over the batch of (||d critic(x_hat_b) / d x_hat_b||_2 - 1)^2.

The penalty is part of the critic's loss, so it must stay differentiable with respect
to the critic's weights: torch.autograd.grad(..., create_graph=True).
"""

import torch


def critic(x, W1, b1, w2):
    return torch.tanh(x @ W1 + b1) @ w2


def gradient_penalty(real, fake, eps, W1, b1, w2, lam):
    """Return the penalty as a 0-d tensor that still depends on W1, b1 and w2."""
    with torch.enable_grad():
        x_hat = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)
        scores = critic(x_hat, W1, b1, w2)
        (grads,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
        norms = grads.norm(2, dim=1)
        return lam * ((norms - 1) ** 2).mean()
