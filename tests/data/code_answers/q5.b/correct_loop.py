import torch


def conv_weight_grad(x, y, weight):
    grad = torch.zeros_like(weight)
    for n in range(x.shape[0]):
        y_hat = 0.0
        for i in range(32):
            y_hat = y_hat + (x[n, 0, i] * weight[0, 0, i]).sum()
        grad[0, 0] += 2 * (y_hat - y[n]) * x[n, 0]
    return grad
