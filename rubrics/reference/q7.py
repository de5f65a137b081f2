"""Reference for q7.e: gradient of a loss through softmax attention weights, by autograd.

weights = softmax(scores, dim=-1) (each row sums to 1). Given the upstream gradient
grad_weights = dL/dweights, return dL/dscores (same shape as scores). By hand it is
weights * (grad_weights - (grad_weights * weights).sum(-1, keepdim=True)).
"""

import torch


def softmax_scores_grad(scores, grad_weights):
    """Return dL/dscores for weights = softmax(scores, dim=-1) and dL/dweights = grad_weights."""
    with torch.enable_grad():
        s = scores.detach().clone().requires_grad_(True)
        weights = torch.softmax(s, dim=-1)
        (grad_s,) = torch.autograd.grad(weights, s, grad_outputs=grad_weights.detach())
    return grad_s.detach()
