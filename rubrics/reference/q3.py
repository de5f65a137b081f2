"""Reference for q3.b: one step of SGD with momentum, taken by torch.optim.SGD itself.

The student implements the update by hand; the grader compares with what PyTorch's
optimizer does from the same parameter, gradient and momentum buffer:

    v_new = momentum * v + grad
    p_new = p - lr * v_new

(dampening 0, no Nesterov, no weight decay).
"""

import torch


def sgd_momentum_step(param, grad, velocity, lr, momentum):
    """Return (new_param, new_velocity) after one torch.optim.SGD step from the given state."""
    p = torch.nn.Parameter(param.detach().clone())
    p.grad = grad.detach().clone()
    opt = torch.optim.SGD([p], lr=lr, momentum=momentum)
    # start from the given momentum buffer (torch would otherwise start from a copy of grad)
    opt.state[p]["momentum_buffer"] = velocity.detach().clone()
    opt.step()
    return p.detach().clone(), opt.state[p]["momentum_buffer"].detach().clone()
