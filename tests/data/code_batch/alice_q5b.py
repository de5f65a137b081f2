import torch


def conv_weight_grad(x, y, weight):
    # the 32x32 kernel covers the whole 32x32 input: one output per sample
    y_hat = (x * weight).sum(dim=(1, 2, 3))          # (N,)
    r = y_hat - y                                    # (N,)
    return (2 * r[:, None, None, None] * x).sum(dim=0, keepdim=True)
