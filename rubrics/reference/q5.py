"""Reference for q5.b: dL/dweight of nn.Conv2d(1, 1, kernel_size=32, bias=False).

L = sum over the batch of (y_hat - y)^2, where y_hat is the convolution's
(single-number) output for each sample. Computed with PyTorch autograd, which
the grader compares the student's hand-written gradient against.
"""

import torch
import torch.nn.functional as F


def conv_weight_grad(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Return dL/dweight, shape (1, 1, 32, 32), for x (N, 1, 32, 32), y (N,), weight (1, 1, 32, 32)."""
    with torch.enable_grad():
        w = weight.detach().clone().requires_grad_(True)
        y_hat = F.conv2d(x.detach(), w).reshape(-1)  # (N,): one output position per sample
        loss = ((y_hat - y.detach().reshape(-1)) ** 2).sum()
        loss.backward()
    return w.grad.detach()
