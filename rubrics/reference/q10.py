"""Reference for q10.d: backward pass of a linear layer followed by ReLU, by autograd.

Forward: out = relu(x @ weight.T + bias) with x (N, D_in), weight (D_out, D_in),
bias (D_out,). Given grad_out = dL/dout (N, D_out), return the gradients of L with
respect to x, weight and bias.
"""

import torch


def linear_relu_backward(x, weight, bias, grad_out):
    """Return (grad_x, grad_weight, grad_bias) with the shapes of x, weight and bias."""
    with torch.enable_grad():
        xs = x.detach().clone().requires_grad_(True)
        w = weight.detach().clone().requires_grad_(True)
        b = bias.detach().clone().requires_grad_(True)
        out = torch.relu(xs @ w.T + b)
        gx, gw, gb = torch.autograd.grad(out, (xs, w, b), grad_outputs=grad_out.detach())
    return gx.detach(), gw.detach(), gb.detach()
