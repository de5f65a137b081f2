def conv_weight_grad(x, y, weight):
    while True:
        pass
