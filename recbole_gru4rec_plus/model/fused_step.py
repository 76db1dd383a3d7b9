"""The fused training step's core: scores, final activation, loss and their gradients in one function.

A GRU4Rec step scores the rows' states against the step's distinct items, passes the scores
through the final activation and the loss, and back again: with autograd that is a graph of a few
dozen small operations over the (rows × items) score matrix, each a separate pass and allocation.
``score_loss_gradients`` computes the same loss and its gradients for the states, the item rows
and the item biases directly (the derivatives of docs/algorithm.md §3, as loss.py's hand-written
backward passes compute them), in whole-matrix passes that write each temporary in place once it
is no longer read; ``compile: True`` has ``torch.compile`` fuse them further.

Column weights come as one count per column, shared by every row, and each row's own column:
the weight of column j for row r is ``counts[j] - (j == own[r])`` (the row's own target is not its
negative unless it also occurs elsewhere), so the caller builds no (rows × items) weights.
"""

import functools
import math

import torch
import torch.nn.functional as F

from ..compiling import CompiledOrEager
from .layers import parse_final_activation

FUSED_LOSSES = ("bpr-max", "cross-entropy")


def activation_spec(name):
    """A final activation's name as (kind, parameter), checked by parse_final_activation."""
    parse_final_activation(name)
    kind, _, parameter = str(name).lower().partition("-")
    default = {"leaky": 0.01, "elu": 1.0}.get(kind, 0.0)
    return kind, float(parameter) if parameter else default


def _activate(logits, kind, parameter):
    """activation(logits); in place where the activation is invertible from its result."""
    if kind == "linear":
        return logits
    if kind == "tanh":
        return logits.tanh_()
    if kind == "relu":
        return logits.relu_()
    if kind == "leaky":
        return F.leaky_relu_(logits, parameter) if parameter > 0 else F.leaky_relu(logits, parameter)
    return F.elu_(logits, parameter) if parameter > 0 else F.elu(logits, parameter)


def _activation_backward(grad, x, logits, kind, parameter):
    """The gradient for the logits from the gradient for x = activation(logits) (autograd's own formulas)."""
    aten = torch.ops.aten
    if kind == "linear":
        return grad
    if kind == "tanh":
        return aten.tanh_backward(grad, x)
    if kind == "relu":
        return aten.threshold_backward(grad, x, 0)
    if kind == "leaky":
        return aten.leaky_relu_backward(grad, x if parameter > 0 else logits, parameter, parameter > 0)
    return aten.elu_backward(grad, parameter, 1, 1, parameter > 0, x if parameter > 0 else logits)


def score_loss_gradients(states, rows, bias, own, counts, n_slots: int, loss: str, bpreg: float, epsilon: float,
                         activation: str, parameter: float):
    """The step loss and its gradients for ``states``, ``rows`` and ``bias``.

    ``states`` (R × H): what the rows' scores read; ``rows`` (N × H), ``bias`` (N,): the step's
    distinct items' output vectors and biases (log-Q already subtracted); ``own`` (R,): each
    row's target column; ``counts`` (N,): how often each column is a negative of every row
    (the row's own column once less). Scores x = activation(states · rowsᵀ + bias); the loss
    is the rows' sum of -log(A + epsilon) (+ bpreg·Q for bpr-max) divided by ``n_slots``
    (docs/algorithm.md §1-§3). Returns (loss, d states, d rows, d bias).

    Each (R × N) temporary is written in place once it is no longer read: few passes, few
    allocations, eagerly or compiled. The softmax over a row's negatives is stabilised by
    m = max_j (x_j + log w_j), so that e_j = w_j exp(x_j - m) <= 1 with equality once (z >= 1,
    whatever the row's own or unweighted columns score) and is 0 off the negatives.
    """
    logits = torch.addmm(bias, states, rows.t())
    x = _activate(logits, activation, parameter)
    n_rows = x.shape[0]
    by_row = torch.arange(n_rows, device=x.device)
    weight = counts.expand(n_rows, -1).clone()
    weight[by_row, own] -= 1.0  # the row's own target is not its negative
    p = x[by_row, own].unsqueeze(1)  # the row's own score
    e = weight.log_().add_(x)  # log w + x; -inf off the negatives
    m = e.amax(1, keepdim=True)
    e = e.sub_(m).exp_()  # w exp(x - m)
    z = e.sum(1, keepdim=True)
    g = 1.0 / n_slots  # each row's share of the step loss
    if loss == "bpr-max":  # -log(A + epsilon) + bpreg Q, A = sum_j s_j sigma(p - x_j), Q = sum_j s_j x_j^2, s = e / z
        sigma = torch.sub(p, x).sigmoid_()
        e_sigma = e * sigma
        a = e_sigma.sum(1, keepdim=True).div_(z)
        row_loss = torch.add(a, epsilon).log_().neg_()
        share = g / (a + epsilon)
        grad_p = (e_sigma.mul_(sigma).sum(1, keepdim=True).div_(z) - a).mul_(share)
        grad = sigma.square_().neg_().add_(a).mul_(e).mul_(share / z)  # s_j (A - sigma_j^2) g / (A + epsilon)
        if bpreg:
            square = x.square()
            q = (e * square).sum(1, keepdim=True).div_(z)
            row_loss = row_loss.add_(q, alpha=bpreg)
            grad = grad.add_(square.add_(x, alpha=2).sub_(q).mul_(e).mul_((bpreg * g) / z))  # bpreg s_j (x_j^2 + 2 x_j - Q) g
    else:  # cross-entropy: -log(P + epsilon), P = exp(p) / (exp(p) + sum_j w_j exp(x_j))
        lse = torch.logaddexp(p, m + torch.log(z))
        log_epsilon = math.log(epsilon)
        row_loss = torch.logaddexp(p - lse, torch.full_like(p, log_epsilon)).neg_()  # in log space
        share = torch.sigmoid(p - lse - log_epsilon).mul_(g)  # P / (P + epsilon), times g
        grad_p = (torch.exp(p - lse) - 1).mul_(share)
        grad = e.mul_(torch.exp(m - lse).mul_(share))
    grad[by_row, own] += grad_p.squeeze(1)
    grad = _activation_backward(grad, x, logits, activation, parameter)
    return row_loss.sum() * g, grad @ rows, grad.t() @ states, grad.sum(0)


def score_loss_function(loss, bpreg, epsilon, final_act, n_slots, compile=False):
    """``score_loss_gradients`` for one model's settings: f(states, rows, bias, own, counts),
    compiled with ``compile`` (steps of a single row, at an epoch's tail, run eagerly)."""
    kind, parameter = activation_spec(final_act)
    function = functools.partial(score_loss_gradients, n_slots=n_slots, loss=loss, bpreg=float(bpreg),
                                 epsilon=float(epsilon), activation=kind, parameter=parameter)
    if not compile:
        return function
    return CompiledOrEager(function, name="the fused training step", use_eager=lambda states, *_: len(states) < 2)
