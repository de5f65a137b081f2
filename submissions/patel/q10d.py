import torch


def linear_relu_backward(x, weight, bias, grad_out):
    z = x @ weight.T + bias
    g = grad_out * (z > 0)
    return g @ weight, g.T @ x, g.sum(dim=0)
