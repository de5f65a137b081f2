import torch


def sgd_momentum_step(param, grad, velocity, lr, momentum):
    # in-place on copies, the way torch.optim does it internally
    v = velocity.clone().mul_(momentum).add_(grad)
    p = param.clone().add_(v, alpha=-lr)
    return p, v
