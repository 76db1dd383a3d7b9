"""Building blocks of the GRU4Rec family: GRU layers with an external input projection, final activations."""

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from ..errors import PluginError


def init_uniform_(weight, fan_in, fan_out):
    """GRU4Rec's initialisation: uniform in ±sqrt(6 / (fan_in + fan_out))."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        return weight.uniform_(-bound, bound)


def distinct(ids, n_ids):
    """(sorted distinct values of ``ids``, the index of each id among them), ids in [0, n_ids).

    torch.unique sorts all ids; when the id range is not much larger than the ids themselves (a
    step's 2,000-odd targets and samples among up to ~130k items), marking them in a table of
    n_ids flags and reading it back in order is a few times faster and gives the same result.
    """
    if n_ids > 64 * len(ids):
        return torch.unique(ids, return_inverse=True)
    present = torch.zeros(n_ids, dtype=torch.bool, device=ids.device).index_fill_(0, ids, True)
    values = torch.nonzero(present).squeeze(1)
    position = torch.empty(n_ids, dtype=torch.long, device=ids.device)
    position[values] = torch.arange(len(values), device=ids.device)
    return values, position[ids]


class _DistinctRows(torch.autograd.Function):
    """``weight[rows]`` for sorted distinct ``rows``, and optionally ``weight[rows][picks]``; the
    gradient is one sparse tensor with one row per distinct row (per row of ``touched``, if given)."""

    @staticmethod
    def forward(ctx, weight, rows, picks, touched):
        ctx.save_for_backward(rows, picks, touched)
        ctx.weight_shape = weight.shape
        gathered = weight.index_select(0, rows)
        return gathered if picks is None else (gathered, gathered.index_select(0, picks))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad, grad_picked=None):
        rows, picks, touched = ctx.saved_tensors
        if grad is None:
            grad = grad_picked.new_zeros(len(rows), *ctx.weight_shape[1:])
        if grad_picked is not None:
            grad = grad.index_add(0, picks, grad_picked)  # out of place: grad may be shared
        if touched is not None:
            rows, grad = rows[touched], grad[touched]
        sparse = torch.sparse_coo_tensor(
            rows.unsqueeze(0), grad, ctx.weight_shape, is_coalesced=True, check_invariants=False
        )
        return sparse, None, None, None


def gather_distinct_rows(weight, rows, picks=None, touched=None):
    """``weight[rows]`` for sorted distinct ``rows`` (e.g. from ``torch.unique``), with a sparse
    gradient of one row per distinct row; with ``picks`` (positions in ``rows``) also
    ``weight[rows[picks]]``, whose gradient joins the same sparse tensor. ``touched`` (a bool
    mask over ``rows``) limits the gradient to those rows: the caller knows the others get none,
    and an optimizer with momentum moves every row it is handed, as the original's does not.

    F.embedding(sparse=True) yields one gradient row per lookup, which the optimizer then has to
    sort and merge (coalesce); here there is nothing to merge, and the input rows of a step do not
    need a lookup (and a sparse gradient) of their own.
    """
    return _DistinctRows.apply(weight, rows, picks, touched)


class _GRUCellFunction(torch.autograd.Function):
    """torch.nn.GRUCell's step with a hand-derived backward: a dozen operations on B × 3H tensors
    instead of autograd's thirty-odd (a step of GRU4Rec is small, and each operation costs).

    h' = n + z (h - n), n = tanh(a_n + r hg_n), r = sigmoid(a_r + hg_r), z = sigmoid(a_z + hg_z),
    a = x W_ih^T + b_ih, hg = h W_hh + b_hh. Backward, with g = dL/dh':
        da_n = g (1 - z) (1 - n^2),  da_z = g (h - n) z (1 - z),  da_r = da_n hg_n r (1 - r),
        dhg = [da_r, da_z, da_n r],  dW_ih = da^T x,  dW_hh = h^T dhg,  dx = da W_ih,  dh = g z + dhg W_hh^T
    """

    @staticmethod
    def forward(ctx, x, hidden, input_weight, input_bias, hidden_weight, hidden_bias):
        size = hidden.shape[1]
        gates = torch.addmm(input_bias, x, input_weight.t())
        hidden_gates = torch.addmm(hidden_bias, hidden, hidden_weight)
        reset_update = gates[:, : 2 * size].add_(hidden_gates[:, : 2 * size]).sigmoid_()
        reset, update = reset_update[:, :size], reset_update[:, size:]
        candidate = torch.addcmul(gates[:, 2 * size :], reset, hidden_gates[:, 2 * size :]).tanh_()
        ctx.save_for_backward(x, hidden, input_weight, hidden_weight, reset_update, candidate, hidden_gates[:, 2 * size :])
        return torch.sub(hidden, candidate).mul_(update).add_(candidate)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, hidden, input_weight, hidden_weight, reset_update, candidate, hidden_candidate = ctx.saved_tensors
        size = hidden.shape[1]
        reset, update = reset_update[:, :size], reset_update[:, size:]
        grad_gates = reset_update.new_empty(len(x), 3 * size)
        grad_candidate = torch.mul(grad, 1 - update, out=grad_gates[:, 2 * size :]).mul_(1 - candidate.square())
        torch.sub(hidden, candidate, out=grad_gates[:, size : 2 * size]).mul_(grad).mul_(update * (1 - update))
        torch.mul(grad_candidate, hidden_candidate, out=grad_gates[:, :size]).mul_(reset * (1 - reset))
        grad_hidden_gates = grad_gates.clone()
        grad_hidden_gates[:, 2 * size :].mul_(reset)
        needs = ctx.needs_input_grad
        grad_x = grad_gates @ input_weight if needs[0] else None
        grad_hidden = torch.addmm(grad * update, grad_hidden_gates, hidden_weight.t()) if needs[1] else None
        return (grad_x, grad_hidden, grad_gates.t() @ x, grad_gates.sum(0),
                hidden.t() @ grad_hidden_gates, grad_hidden_gates.sum(0))


class GRULayer(nn.Module):
    """One GRU layer, computed as ``torch.nn.GRUCell`` computes it (REFERENCE §1):

        r, z = sigmoid(x W_ir + b_ir + h W_hr + b_hr), sigmoid(x W_iz + b_iz + h W_hz + b_hz)
        n = tanh(x W_in + b_in + r * (h W_hn + b_hn)),   h' = (1 - z) n + z h

    with every bias starting at zero and every gate's weights uniform in ±sqrt(6 / (fan_in + H)).
    """

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.input_weight = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        for gate in self.input_weight.split(hidden_size, dim=0):
            init_uniform_(gate, input_size, hidden_size)
        self.input_bias = nn.Parameter(torch.zeros(3 * hidden_size))
        self.hidden_weight = nn.Parameter(torch.empty(hidden_size, 3 * hidden_size))
        for gate in self.hidden_weight.split(hidden_size, dim=1):
            init_uniform_(gate, hidden_size, hidden_size)
        self.hidden_bias = nn.Parameter(torch.zeros(3 * hidden_size))

    def forward(self, x, hidden):
        return _GRUCellFunction.apply(x, hidden, self.input_weight, self.input_bias, self.hidden_weight, self.hidden_bias)


class OneHotGRULayer(nn.Module):
    """The original's first layer for one-hot item input (no input embedding, not constrained):
    the input side is an item table of gate values plus a bias, the reset gate scales the state
    before the candidate's hidden product, and there is no hidden-side bias:

        r, z = sigmoid(V[i]_r + b_r + h W_r), sigmoid(V[i]_z + b_z + h W_z)
        n = tanh(V[i]_n + b_n + (r * h) W_n),   h' = (1 - z) n + z h

    (The original writes h' = (1 - z) h + z n; with weights drawn symmetrically around zero the
    two are the same model, z standing for 1 - z.)
    """

    def __init__(self, n_items, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.item_gates = nn.Embedding(n_items, 3 * hidden_size)
        for gate in self.item_gates.weight.split(hidden_size, dim=1):
            init_uniform_(gate, n_items, hidden_size)
        self.input_bias = nn.Parameter(torch.zeros(3 * hidden_size))
        self.hidden_weight = nn.Parameter(torch.empty(hidden_size, 3 * hidden_size))
        for gate in self.hidden_weight.split(hidden_size, dim=1):
            init_uniform_(gate, hidden_size, hidden_size)

    def forward(self, items, hidden):
        gates = F.embedding(items, self.item_gates.weight, sparse=True) + self.input_bias
        size = self.hidden_size
        reset_update = torch.addmm(gates[:, : 2 * size], hidden, self.hidden_weight[:, : 2 * size])
        reset, update = torch.sigmoid(reset_update).chunk(2, dim=1)
        candidate = torch.tanh(torch.addmm(gates[:, 2 * size :], reset * hidden, self.hidden_weight[:, 2 * size :]))
        return candidate + update * (hidden - candidate)


def parse_final_activation(name):
    """'linear', 'relu', 'tanh', 'leaky-<slope>', 'elu-<alpha>' -> a function on score matrices.

    The function works in place (saving a score-sized buffer per step), so pass it a matrix of your
    own, e.g. fresh scores; autograd still works (a negative slope or alpha is applied out of place,
    since autograd cannot invert it in place).
    """
    kind, _, parameter = str(name).lower().partition("-")
    try:
        value = float(parameter) if parameter else None
    except ValueError:
        value = None
        kind = "invalid"
    if kind not in ("linear", "relu", "tanh", "leaky", "elu") or (value is not None and kind not in ("leaky", "elu")):
        raise PluginError(
            f"final_act '{name}' is not valid: use linear, relu, tanh, leaky-<slope> or elu-<alpha> (e.g. elu-0.5)"
        )
    if kind == "leaky":
        slope = value if value is not None else 0.01
        leaky_relu = F.leaky_relu_ if slope > 0 else F.leaky_relu
        return lambda scores: leaky_relu(scores, slope)
    if kind == "elu":
        alpha = value if value is not None else 1.0
        elu = F.elu_ if alpha > 0 else F.elu
        return lambda scores: elu(scores, alpha)
    return {"linear": lambda scores: scores, "relu": F.relu_, "tanh": torch.tanh_}[kind]
