def sgd_momentum_step(param, grad, velocity, lr, momentum):
    new_velocity = momentum * velocity + grad
    new_param = param - lr * new_velocity
    return new_param, new_velocity
