def sgd_momentum_step(param, grad, velocity, lr, momentum):
    return param - lr * (momentum * velocity + grad)
