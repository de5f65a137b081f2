def sgd_momentum_step(param, grad, velocity, lr, momentum):
    new_velocity = momentum * velocity + grad
    return param + lr * new_velocity, new_velocity     # gradient ascent
