def sgd_momentum_step(param, grad, velocity, lr, momentum):
    # the "other" convention: lr folded into the velocity; does not match torch.optim.SGD
    new_velocity = momentum * velocity + lr * grad
    return param - new_velocity, new_velocity
