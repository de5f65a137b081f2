def linear_relu_backward(x, weight, bias, grad_out):
    g = grad_out * (x @ weight.T + bias > 0)
    return g @ weight, g.T @ x, g.mean(dim=0)    # bias gradient averaged instead of summed
