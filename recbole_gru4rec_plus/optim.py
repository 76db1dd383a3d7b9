"""Adagrad with momentum as in the original GRU4Rec, updating only the embedding rows a step touched."""

import torch

from .compiling import CompiledOrEager
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
    ``update_rows`` takes a row gradient directly (the fused step); ``compile`` compiles the row
    updates with torch.compile.
    """

    def __init__(self, params, lr=0.05, momentum=0.0, eps=1e-6, compile=False):
        if not lr >= 0:
            raise PluginError(f"learning_rate={lr} must be >= 0: set learning_rate to a positive value, e.g. 0.05.")
        if not 0 <= momentum < 1:
            raise PluginError(f"momentum={momentum} must be in [0, 1): set momentum to 0 (none) or e.g. 0.3.")
        if not eps > 0:
            raise PluginError(f"eps={eps} must be > 0: the Adagrad epsilon keeps sqrt(acc + eps) away from zero.")
        super().__init__(params, dict(lr=lr, momentum=momentum, eps=eps))
        # the row updates, compiled with dynamic shapes (the number of rows changes every step)
        self._rows_step = CompiledOrEager(adagrad_rows, _adagrad_rows_eager, "the row updates") if compile else _adagrad_rows_eager

    def _state(self, p, key):
        state = self.state[p]
        if key not in state:
            state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state[key]

    @torch.no_grad()
    def step(self, closure=None):
        """Apply one update to every parameter that has a gradient; returns closure() if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mom, eps = group["lr"], group["momentum"], group["eps"]
            with_grad = [p for p in group["params"] if p.grad is not None]
            dense = [p for p in with_grad if not p.grad.is_sparse]
            if dense:
                self._dense_step(dense, lr, mom, eps)
            for p in with_grad:
                if p.grad.is_sparse:
                    self._sparse_step(p, lr, mom, eps)
        return loss

    def _dense_step(self, params, lr, mom, eps):
        """All dense parameters at once (one multi-tensor call per operation: a step has few, small ones)."""
        grads = [p.grad for p in params]
        accs = [self._state(p, "acc") for p in params]
        torch._foreach_addcmul_(accs, grads, grads)
        denominators = torch._foreach_add(accs, eps)
        torch._foreach_sqrt_(denominators)
        if mom > 0:
            velocities = [self._state(p, "vel") for p in params]
            torch._foreach_mul_(velocities, mom)
            torch._foreach_addcdiv_(velocities, grads, denominators, value=lr)
            torch._foreach_sub_(params, velocities)
        else:
            torch._foreach_addcdiv_(params, grads, denominators, value=-lr)

    def _sparse_step(self, p, lr, mom, eps):
        """Only the rows of a sparse (COO) gradient: their acc, velocity and values."""
        g = p.grad
        if g.sparse_dim() != 1:
            raise ValueError("IndexedAdagradM supports sparse gradients over rows only (sparse_dim == 1)")
        self._update_rows(p, *_distinct_rows(g), lr, mom, eps)

    @torch.no_grad()
    def update_rows(self, p, rows, grad):
        """Update only rows ``rows`` (distinct) of ``p``, whose gradient there is ``grad`` (one
        row each), as a sparse gradient with those rows would: the fused step's path, which
        needs no sparse tensor."""
        group = self._group_of(p)
        self._update_rows(p, rows, grad, group["lr"], group["momentum"], group["eps"])

    def _group_of(self, p):
        for group in self.param_groups:
            if any(p is q for q in group["params"]):
                return group
        raise ValueError("update_rows: the tensor is not a parameter of this optimizer")

    def _update_rows(self, p, rows, values, lr, mom, eps):
        acc = self._state(p, "acc")
        velocity = self._state(p, "vel") if mom > 0 else None
        self._rows_step(p, acc, velocity, rows, values, lr, mom, eps)


def adagrad_rows(p, acc, velocity, rows, grad, lr: float, momentum: float, eps: float):
    """Adagrad(+momentum) on rows ``rows`` (distinct) of ``p``, ``acc`` and ``velocity`` (None
    without momentum), in place: gathers, the update and scatters that ``torch.compile`` fuses
    into one loop over the rows (``compile: True``)."""
    accumulated = acc[rows] + grad * grad
    acc[rows] = accumulated
    update = lr * grad / torch.sqrt(accumulated + eps)
    if velocity is not None:
        update = update + momentum * velocity[rows]
        velocity[rows] = update
    p[rows] = p[rows] - update


def _adagrad_rows_eager(p, acc, velocity, rows, grad, lr, momentum, eps):
    """``adagrad_rows`` in the fewest eager passes (index_add_ is the fastest scatter on CPU)."""
    acc.index_add_(0, rows, grad * grad)
    update = acc.index_select(0, rows).add_(eps).sqrt_()
    torch.div(grad, update, out=update)  # g / sqrt(acc + eps)
    if velocity is not None:
        update.mul_(lr).add_(velocity.index_select(0, rows), alpha=momentum)
        velocity.index_copy_(0, rows, update)
        update.neg_()
    else:
        update.mul_(-lr)
    p.index_add_(0, rows, update)  # index_add_ with alpha != 1 is ~3x slower on CPU
