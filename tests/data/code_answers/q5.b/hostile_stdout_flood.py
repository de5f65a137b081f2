import sys


def conv_weight_grad(x, y, weight):
    chunk = "spam" * 250_000            # 1 MB
    for _ in range(200):                # 200 MB in total
        sys.stdout.write(chunk)
    return weight
