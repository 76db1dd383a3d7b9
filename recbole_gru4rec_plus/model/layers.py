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


class GRULayer(nn.Module):
    """One GRU layer, computed as ``torch.nn.GRUCell`` computes it (docs/algorithm.md §1):

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

    def forward(self, x, hidden, gate_input=None):
        """The new state; ``gate_input`` (rows × 2H), if given, is added to the reset and update gates' inputs."""
        return self._new_state(x, hidden, gate_input)[0]

    @torch.no_grad()
    def forward_taped(self, x, hidden):
        """``forward`` without an autograd graph: (new state, what ``backward_taped`` reads)."""
        return self._new_state(x, hidden)

    def _new_state(self, x, hidden, gate_input=None):
        """(new state, the intermediate values the backward reads)."""
        size = self.hidden_size
        gates = torch.addmm(self.input_bias, x, self.input_weight.t())
        hidden_gates = torch.addmm(self.hidden_bias, hidden, self.hidden_weight)
        reset_update = gates[:, : 2 * size].add_(hidden_gates[:, : 2 * size])
        if gate_input is not None:
            reset_update = reset_update + gate_input
        reset_update = torch.sigmoid(reset_update)
        reset, update = reset_update.chunk(2, dim=1)
        hidden_candidate = hidden_gates[:, 2 * size :]
        candidate = torch.tanh(torch.addcmul(gates[:, 2 * size :], reset, hidden_candidate))
        return candidate + update * (hidden - candidate), (x, hidden, reset_update, candidate, hidden_candidate)

    @torch.no_grad()
    def backward_taped(self, grad, tape):
        """The backward of ``forward_taped``: adds the weights' gradients to their ``.grad`` and
        returns the gradient for the input x (the state's is not needed: the carried state is
        cut from the graph, docs/algorithm.md §1). The derivatives of the equations above:
        with a = the candidate's input, dn = dh' (1 - z), dz = dh' (h - n), da = dn (1 - n²),
        dr = da (h W_hn + b_hn), and the gates' inputs get dr r (1 - r), dz z (1 - z)."""
        x, hidden, reset_update, candidate, hidden_candidate = tape
        reset, update = reset_update.chunk(2, dim=1)
        grad_candidate_input = (1 - update).mul_(grad).mul_(1 - candidate * candidate)
        grad_reset_update = torch.cat((grad_candidate_input * hidden_candidate, (hidden - candidate).mul_(grad)), dim=1)
        grad_reset_update.mul_(reset_update * (1 - reset_update))  # through the sigmoids
        grad_gates = torch.cat((grad_reset_update, grad_candidate_input), dim=1)
        grad_hidden_gates = torch.cat((grad_reset_update, grad_candidate_input * reset), dim=1)
        for parameter, value in ((self.input_weight, grad_gates.t() @ x), (self.input_bias, grad_gates.sum(0)),
                                 (self.hidden_weight, hidden.t() @ grad_hidden_gates),
                                 (self.hidden_bias, grad_hidden_gates.sum(0))):
            parameter.grad = value if parameter.grad is None else parameter.grad.add_(value)
        return grad_gates @ self.input_weight


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

    def forward(self, items, hidden, gate_input=None):
        gates = F.embedding(items, self.item_gates.weight, sparse=True) + self.input_bias
        size = self.hidden_size
        reset_update = torch.addmm(gates[:, : 2 * size], hidden, self.hidden_weight[:, : 2 * size])
        if gate_input is not None:
            reset_update = reset_update + gate_input
        reset, update = torch.sigmoid(reset_update).chunk(2, dim=1)
        candidate = torch.tanh(torch.addmm(gates[:, 2 * size :], reset * hidden, self.hidden_weight[:, 2 * size :]))
        return candidate + update * (hidden - candidate)


class MixtureHeads(nn.Module):
    """The Mixture of Softmaxes' heads (Yang et al., ICLR 2018; docs/algorithm.md §7): for a state h, K
    head states g_k = tanh(P_k h) and the log mixture weights log softmax(W_pi h). The heads
    share the output item vectors and biases; the caller scores each g_k as it scores h.

    Each P_k starts at the identity plus GRU4Rec's uniform noise, so that every head starts near
    the plain head (g_k ~ tanh(h), which the shared item vectors are trained for) and the noise sets
    the heads apart; from noise alone the heads start as K random rotations of h that the one
    table of item vectors cannot fit at once (rook's walks, bench/bench_mos.py --part rook:
    README, Benchmarks).
    """

    def __init__(self, hidden_size, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.projection = nn.Linear(hidden_size, n_heads * hidden_size, bias=False)  # P_1 .. P_K stacked
        for head in self.projection.weight.split(hidden_size, dim=0):
            init_uniform_(head, hidden_size, hidden_size)
            with torch.no_grad():
                head.add_(torch.eye(hidden_size))
        self.prior = nn.Linear(hidden_size, n_heads, bias=False)
        init_uniform_(self.prior.weight, hidden_size, n_heads)

    def forward(self, hidden):
        """(head states, rows * K × H: row r's heads at r*K .. r*K + K-1; log pi, rows × K)."""
        heads = torch.tanh(self.projection(hidden)).reshape(len(hidden) * self.n_heads, -1)
        return heads, F.log_softmax(self.prior(hidden), dim=1)


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
