def linear_relu_backward(x, weight, bias, grad_out):
    g = grad_out * (x @ weight.T + bias > 0)
    return g @ weight, x.T @ g, g.sum(dim=0)     # grad_weight has shape (D_in, D_out)
