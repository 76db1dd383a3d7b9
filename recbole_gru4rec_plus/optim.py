"""Adagrad with momentum as in the original GRU4Rec, updating only the embedding rows a step touched."""

import torch

from .errors import PluginError


def _distinct_rows(grad):
    """(row indices, values) of a sparse row gradient, duplicate rows summed.

    coalesce() sorts even when the rows are already sorted and distinct (as for gradients made
    by gather_distinct_rows, whose coalesced flag autograd drops), so check that first: O(nnz).
    """
    if not grad.is_coalesced():
        rows = grad._indices()[0]
        if not bool((rows[1:] > rows[:-1]).all()):
            grad = grad.coalesce()
    return grad._indices()[0], grad._values()


class IndexedAdagradM(torch.optim.Optimizer):
    """Adagrad(+momentum): acc += g²; upd = lr·g/sqrt(acc+eps) (+ momentum·vel); vel = upd; p -= upd.

    Sparse (COO) gradients update only their rows (acc, vel and p of other rows stay unchanged,
    so momentum is not applied to them); duplicate rows are summed first, and a gradient whose
    rows are already sorted and distinct is used as it is. Dense gradients update the whole tensor.
    Note eps is inside the sqrt (GRU4Rec), unlike torch.optim.Adagrad's sqrt(acc) + eps.
    """

    def __init__(self, params, lr=0.05, momentum=0.0, eps=1e-6):
        if not lr > 0:
            raise PluginError(f"learning_rate={lr} must be > 0: set learning_rate to a positive value, e.g. 0.05.")
        if not 0 <= momentum < 1:
            raise PluginError(f"momentum={momentum} must be in [0, 1): set momentum to 0 (none) or e.g. 0.3.")
        if not eps > 0:
            raise PluginError(f"eps={eps} must be > 0: the Adagrad epsilon keeps sqrt(acc + eps) away from zero.")
        super().__init__(params, dict(lr=lr, momentum=momentum, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        """Apply one update to every parameter that has a gradient; returns closure() if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mom, eps = group["lr"], group["momentum"], group["eps"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                state = self.state[p]
                if not state:
                    state["acc"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if mom > 0 and "vel" not in state:
                    state["vel"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                acc = state["acc"]
                if g.is_sparse:
                    if g.sparse_dim() != 1:
                        raise ValueError("IndexedAdagradM supports sparse gradients over rows only (sparse_dim == 1)")
                    idx, vals = _distinct_rows(g)
                    acc.index_add_(0, idx, vals * vals)
                    upd = acc.index_select(0, idx).add_(eps).rsqrt_().mul_(vals)
                    if mom > 0:
                        vel = state["vel"]
                        upd.mul_(lr).add_(vel.index_select(0, idx), alpha=mom)
                        vel.index_copy_(0, idx, upd)
                        upd.neg_()
                    else:
                        upd.mul_(-lr)
                    p.index_add_(0, idx, upd)  # index_add_ with alpha != 1 is ~3x slower on CPU
                else:
                    acc.addcmul_(g, g)
                    rstd = torch.add(acc, eps).rsqrt_()  # rsqrt is faster than sqrt + div on CPU
                    if mom > 0:
                        p.sub_(state["vel"].mul_(mom).addcmul_(g, rstd, value=lr))
                    else:
                        p.addcmul_(g, rstd, value=-lr)
        return loss
