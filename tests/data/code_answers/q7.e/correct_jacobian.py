import torch


def softmax_scores_grad(scores, grad_weights):
    """Explicit per-row Jacobian diag(w) - w w^T (slower, same result)."""
    w = torch.softmax(scores, dim=-1)
    jac = torch.diag_embed(w) - w.unsqueeze(-1) * w.unsqueeze(-2)   # (..., T_in, T_in), symmetric
    return (jac @ grad_weights.unsqueeze(-1)).squeeze(-1)
