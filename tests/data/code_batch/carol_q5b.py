import torch
import torch.nn.functional as F


def conv_weight_grad(x, y, weight):
    """Uses the conv itself for the forward pass, computes in float64 (accepted)."""
    x64, w64 = x.double(), weight.double()
    y_hat = F.conv2d(x64, w64).reshape(-1)
    residual = 2 * (y_hat - y.double())
    return torch.einsum("n,nchw->chw", residual, x64).unsqueeze(0)
