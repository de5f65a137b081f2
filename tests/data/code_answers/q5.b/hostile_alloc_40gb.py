import torch


def conv_weight_grad(x, y, weight):
    big = torch.ones(10 * 1024 ** 3)       # 40 GB of float32
    return big[:1024].reshape(1, 1, 32, 32)
