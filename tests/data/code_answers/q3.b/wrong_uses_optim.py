import torch


def sgd_momentum_step(param, grad, velocity, lr, momentum):
    p = torch.nn.Parameter(param.clone())
    p.grad = grad.clone()
    opt = torch.optim.SGD([p], lr=lr, momentum=momentum)
    opt.state[p]["momentum_buffer"] = velocity.clone()
    opt.step()
    return p.detach(), opt.state[p]["momentum_buffer"]
