"""GRU4Rec's ranking losses (TOP1, BPR, TOP1-max, BPR-max, cross-entropy) as plain modules.

They only see scores, so any RecBole model can use them: ``loss(pos_score, neg_score, neg_mask)``
with ``pos_score`` (B,), ``neg_score`` (B, N) and ``neg_mask`` (B, N) or None (all N columns are
negatives). A bool mask marks with False the columns that are not negatives of the row (no
contribution, no gradient). A float or integer mask gives each column's multiplicity instead: a
column of weight k counts as k identical negatives and weight 0 as none, so that a caller can
score each distinct item once. ``pos_score`` may also be an int64 tensor of column indices: the
positive of row i is then ``neg_score[i, pos_score[i]]`` (the mask says whether that column also
counts as a negative). Every row needs at least one negative, masked scores must be finite, and the
loss is the row mean. Everything runs in log space or in forms that cannot overflow or underflow,
so scores of +-1e4 give finite losses and gradients. A bool mask passed again unchanged is
converted only once.

BPR-max and cross-entropy, the losses GRU4Rec trains with, are autograd Functions with hand-derived
backward passes: a few passes over the (B, N) scores instead of autograd's dozens of operations.
Both compute -log(... + 1e-24) as the original does (``epsilon``; 0 for the exact loss), in log space.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .errors import PluginError

LOSS_NAMES = ("top1", "bpr", "top1-max", "bpr-max", "cross-entropy")
ORIGINAL_EPSILON = 1e-24  # the original GRU4Rec's -log(... + 1e-24) in cross-entropy and BPR-max


def _checked_bpreg(bpreg):
    """BPR-max's regularisation strength as a float; PluginError unless it is a number >= 0."""
    try:
        value = float(bpreg)
    except (TypeError, ValueError):
        value = float("nan")
    if not value >= 0:
        raise PluginError(f"bpreg must be a number >= 0, got {bpreg!r}")
    return value


def _checked_epsilon(epsilon):
    value = float(epsilon)
    if not 0 <= value < 1:
        raise PluginError(f"the loss epsilon must be in [0, 1), got {epsilon!r}")
    return value


def _positive(pos, neg):
    """The positives' scores as a (B, 1) column: ``pos``, or ``neg[i, pos[i]]`` for column indices."""
    if pos.is_floating_point():
        return pos.unsqueeze(1)
    return neg.gather(1, pos.unsqueeze(1))


def _negative_mean(terms, weight):
    """Per-row mean of ``terms`` over the negatives, each counted ``weight`` times (None: once)."""
    if weight is None:
        return terms.mean(1)
    return (terms * weight).sum(1) / weight.sum(1)


def _softmax_parts(neg, weight):
    """Unnormalised softmax over each row's negatives: (m, e, z), all (B, ·), with m a detached row
    max, e = weight * exp(neg - m) (0 off the negatives) and z = e.sum(1), so s = e / z and
    logsumexp = m + log z.

    m is the max over all columns: one pass, no mask needed, and any m >= the negatives' max works
    as long as z does not underflow. Should a non-negative column score so far above the negatives
    that z underflows, m is recomputed over the negatives only (columns above it are clamped so that
    exp stays finite; their weight is 0).
    """
    m = neg.detach().amax(1, keepdim=True)
    e = (neg - m).exp_()
    if weight is None:
        return m, e, e.sum(1, keepdim=True)
    e = e * weight if torch.is_grad_enabled() else e.mul_(weight)  # in place unless autograd records e
    z = e.sum(1, keepdim=True)
    if bool(z.min() < torch.finfo(z.dtype).tiny ** 0.5):
        off_negatives = torch.sign(weight).sub_(1).mul_(torch.finfo(neg.dtype).max)  # 0 or -max, no bool tensor
        m = (neg.detach() + off_negatives).amax(1, keepdim=True)
        e = (neg - m).clamp(max=0).exp_() * weight
        z = e.sum(1, keepdim=True)
    return m, e, z


def _top1_terms(p, neg):
    """sigma(r_j - r_i) + sigma(r_j^2): ranks negatives below the positive and pulls them to 0."""
    return torch.sigmoid(neg - p) + torch.sigmoid(neg.square())


def _positive_gradients(pos, grad_neg, grad_p):
    """The gradient for ``pos`` (a (B,) tensor, or None when ``pos`` indexes ``neg``, whose
    gradient ``grad_neg`` then receives ``grad_p`` in place)."""
    if pos.is_floating_point():
        return grad_p.squeeze(1)
    grad_neg.scatter_add_(1, pos.unsqueeze(1), grad_p)
    return None


def _floored(neg_log, epsilon):
    """-log(A + epsilon) from -log A, in log space, and its derivative factor A / (A + epsilon).

    The original GRU4Rec computes its two losses as -log(A + 1e-24): a row whose A (its target's
    probability, for cross-entropy) is far below 1e-24 costs at most 55.3 and gives almost no
    gradient, where the exact loss would keep pushing it. Done in log space, it is finite for any
    score; epsilon = 0 is the exact loss (factor None: 1).
    """
    if not epsilon:
        return neg_log, None
    log_a, log_epsilon = -neg_log, math.log(epsilon)
    return -torch.logaddexp(log_a, torch.full_like(log_a, log_epsilon)), torch.sigmoid(log_a - log_epsilon)


class _BPRMaxFunction(torch.autograd.Function):
    """Mean over rows of BPR-max, -log(sum_j s_j sigma(p - x_j) + epsilon) + bpreg * sum_j s_j x_j^2,
    and its gradients (docs/algorithm.md §3; s = softmax over the negatives, p the positive's score;
    epsilon as in the original, see _floored).

    With e, z, m from _softmax_parts (e_j = w_j exp(x_j - m)), sum_j e_j sigma(p - x_j) = c * T,
    T = sum_j t_j, where on rows with p >= m: c = 1, t_j = e_j sigma(p - x_j), and on rows with
    p < m: c = exp(p - m), t_j = w_j sigma(x_j - p). T never underflows (the best negative's term
    is >= 1/2 if m is the negatives' max, and not far below otherwise), and one sigmoid pass
    serves both kinds of rows. Gradients, with A = sum_j s_j sigma_j, Q = sum_j s_j x_j^2,
    sigma_j = sigma(p - x_j) and f = A / (A + epsilon):
        dL/dx_j = f s_j (1 - sigma_j^2 / A) + bpreg s_j (x_j^2 - Q + 2 x_j),  s_j sigma_j^2 / A = t_j sigma_j / T
        dL/dp   = -(f/A) sum_j s_j sigma_j (1 - sigma_j) = -f sum_j t_j (1 - sigma_j) / T
    """

    @staticmethod
    def forward(ctx, pos, neg, weight, bpreg, epsilon):
        p = _positive(pos, neg)
        m, e, z = _softmax_parts(neg, weight)
        gap = p - m
        below = (gap < 0).to(neg.dtype)  # 1 on rows under m, where t_j = w_j sigma(x_j - p)
        flip = 1 - 2 * below
        q = torch.sub(p, neg).mul_(flip).sigmoid_()  # sigma(p - x) above m, sigma(x - p) below
        ctx.any_below = bool(below.any())
        if ctx.any_below:  # lerp is exact at 0 and 1: e on the rows above m, w below
            t = torch.lerp(e, weight if weight is not None else neg.new_ones(()), below).mul_(q)
        else:
            t = q * e
        big_t = t.sum(1, keepdim=True)
        rows, factor = _floored(torch.log(z / big_t) - gap * below, epsilon)  # -log A = log z - log(c T)
        square = reg = None
        if bpreg:
            square = neg.square()
            reg = (e * square).sum(1, keepdim=True).div_(z)  # Q; finite since e = 0 off the negatives
            rows = rows.add(reg, alpha=bpreg)
        ctx.save_for_backward(pos, neg, e, z, q, t, big_t, flip, below, square, reg, factor)
        ctx.bpreg = bpreg
        return rows.mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        pos, neg, e, z, q, t, big_t, flip, below, square, reg, factor = ctx.saved_tensors
        g = grad_loss / len(neg)  # the mean's share of each row
        gf = g if factor is None else factor * g  # the -log(A + epsilon) part's share
        s = e * (gf / z)  # softmax, times gf
        u = t * q  # t_j sigma_j above m, t_j (1 - sigma_j) below
        coef = flip / big_t * gf
        grad_neg = torch.addcmul(s, u, coef, value=-1)  # s - u / T above m, s + u / T below ...
        if ctx.any_below:
            grad_neg.addcmul_(t, below / big_t * gf, value=-1)  # ... - t / T below
        grad_p = coef * u.sum(1, keepdim=True) - (1 - below) * gf
        if ctx.bpreg:
            regulariser = torch.add(square, neg, alpha=2).sub_(reg).mul_(g / z)
            grad_neg.addcmul_(e, regulariser, value=ctx.bpreg)
        return _positive_gradients(pos, grad_neg, grad_p), grad_neg, None, None, None


class _BPRMaxFloorFunction(torch.autograd.Function):
    """BPR-max with epsilon > 0 (the original's -log(A + epsilon)), in fewer passes than
    _BPRMaxFunction: with the epsilon floor, -log(A + epsilon) and its gradients are finite for
    any scores without the exact function's care for A near 0 (where they all vanish anyway).
    With A = sum_j s_j sigma_j, Q = sum_j s_j x_j^2, sigma_j = sigma(p - x_j), s = e / z:
        dL/dx_j = s_j (A - sigma_j^2) / (A + epsilon) + bpreg s_j (x_j^2 - Q + 2 x_j)
        dL/dp   = -(A - sum_j s_j sigma_j^2) / (A + epsilon)
    """

    @staticmethod
    def forward(ctx, pos, neg, weight, bpreg, epsilon):
        p = _positive(pos, neg)
        m, e, z = _softmax_parts(neg, weight)
        sigma = torch.sub(p, neg).sigmoid_()
        a = (e * sigma).sum(1, keepdim=True).div_(z)
        rows = torch.add(a, epsilon).log_().neg_()
        square = reg = None
        if bpreg:
            square = neg.square()
            reg = (e * square).sum(1, keepdim=True).div_(z)
            rows.add_(reg, alpha=bpreg)
        ctx.save_for_backward(pos, neg, e, z, sigma, a, square, reg)
        ctx.bpreg, ctx.epsilon = bpreg, epsilon
        return rows.mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        pos, neg, e, z, sigma, a, square, reg = ctx.saved_tensors
        g = grad_loss / len(neg)
        floor_share = g / (a + ctx.epsilon)
        sigma_squared = sigma.square()  # not in place: a graph may be differentiated again (retain_graph)
        grad_p = (e * sigma_squared).sum(1, keepdim=True).div_(z).sub_(a).mul_(floor_share)
        grad_neg = torch.sub(a, sigma_squared).mul_(e).mul_(floor_share / z)
        if ctx.bpreg:
            regulariser = torch.add(square, neg, alpha=2).sub_(reg).mul_(g / z)
            grad_neg.addcmul_(e, regulariser, value=ctx.bpreg)
        return _positive_gradients(pos, grad_neg, grad_p), grad_neg, None, None, None


class _CrossEntropyFunction(torch.autograd.Function):
    """Mean over rows of the sampled softmax loss as the original computes it, -log(P + epsilon)
    with P = exp(p) / (exp(p) + sum_j w_j exp(x_j)) (see _floored); -log P = lse - p with
    lse = logaddexp(p, m + log z). Gradients: f = P / (P + epsilon) times the softmax over the
    positive and the negatives, e_j exp(m - lse) for a negative and exp(p - lse) - 1 for the positive."""

    @staticmethod
    def forward(ctx, pos, neg, weight, epsilon):
        p = _positive(pos, neg)
        m, e, z = _softmax_parts(neg, weight)
        lse = torch.logaddexp(p, m + z.log())
        rows, factor = _floored(lse - p, epsilon)
        ctx.save_for_backward(pos, e, (m - lse).exp_(), (p - lse).exp_(), factor)
        return rows.mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        pos, e, neg_scale, pos_prob, factor = ctx.saved_tensors
        g = grad_loss / len(e)
        if factor is not None:
            g = factor * g
        grad_neg = e * (neg_scale * g)
        return _positive_gradients(pos, grad_neg, (pos_prob - 1) * g), grad_neg, None, None


class _RankingLoss(nn.Module):
    """Shared call: converts the mask to column weights (a bool mask once per mask tensor).

    Subclasses implement ``batch_loss(pos, neg, weight)``, the mean row loss, with ``weight`` the
    (B, N) float multiplicities or None (every column a negative once); ``pos`` as given.
    """

    def __init__(self):
        super().__init__()
        self._mask_cache = None  # (bool mask, its version, dtype, weights)

    def forward(self, pos_score, neg_score, neg_mask=None):
        return self.batch_loss(pos_score, neg_score, self._weight(neg_mask, neg_score.dtype))

    def _weight(self, neg_mask, dtype):
        """The mask as (B, N) multiplicities in ``dtype``, or None for no mask."""
        if neg_mask is None or neg_mask.dtype != torch.bool:
            return None if neg_mask is None else neg_mask.to(dtype)
        # A bool mask is slow to convert on CPU; the caller's constant mask is converted only once.
        version = None if neg_mask.is_inference() else neg_mask._version
        cache = self._mask_cache
        if cache is not None and cache[0] is neg_mask and cache[1:3] == (version, dtype):
            return cache[3]
        weight = neg_mask.to(dtype)
        if version is not None:
            self._mask_cache = (neg_mask, version, dtype, weight)
        return weight

    def batch_loss(self, pos, neg, weight):
        raise NotImplementedError


class TOP1Loss(_RankingLoss):
    """TOP1: mean over negatives of sigma(r_j - r_i) + sigma(r_j^2).

    GRU4Rec's (2016) ranking loss, with a regulariser that keeps negative scores near zero."""

    def batch_loss(self, pos, neg, weight):
        return _negative_mean(_top1_terms(_positive(pos, neg), neg), weight).mean()


class BPRLoss(_RankingLoss):
    """BPR: mean over negatives of -log sigma(r_i - r_j).

    The classic pairwise loss; its gradient fades once most negatives are ranked low."""

    def batch_loss(self, pos, neg, weight):
        return -_negative_mean(F.logsigmoid(_positive(pos, neg) - neg), weight).mean()


class TOP1MaxLoss(_RankingLoss):
    """TOP1-max: the TOP1 terms weighted by s_j, the softmax of the negative scores.

    Focusing on the highest-scored negatives keeps the gradient alive with many negatives."""

    def batch_loss(self, pos, neg, weight):
        _, e, z = _softmax_parts(neg, weight)
        return ((e * _top1_terms(_positive(pos, neg), neg)).sum(1, keepdim=True) / z).mean()


class BPRMaxLoss(_RankingLoss):
    """BPR-max: -log(sum_j s_j sigma(r_i - r_j) + epsilon) + bpreg * sum_j s_j r_j^2, s = softmax of negatives.

    GRU4Rec's (2018) max-style BPR, with a score regulariser of strength ``bpreg``; ``epsilon``
    is the original's 1e-24 inside the log (0: the exact loss)."""

    def __init__(self, bpreg=1.0, epsilon=ORIGINAL_EPSILON):
        super().__init__()
        self.bpreg = _checked_bpreg(bpreg)
        self.epsilon = _checked_epsilon(epsilon)

    def batch_loss(self, pos, neg, weight):
        function = _BPRMaxFloorFunction if self.epsilon else _BPRMaxFunction
        return function.apply(pos, neg, weight, self.bpreg, self.epsilon)

    def extra_repr(self):
        return f"bpreg={self.bpreg}, epsilon={self.epsilon}"


class CrossEntropyLoss(_RankingLoss):
    """Cross-entropy of the positive among itself and its negatives (sampled softmax):
    -log(exp(r_i) / (exp(r_i) + sum_j exp(r_j)) + epsilon), via logsumexp so it never overflows;
    ``epsilon`` is the original's 1e-24 inside the log (0: the exact loss)."""

    def __init__(self, epsilon=ORIGINAL_EPSILON):
        super().__init__()
        self.epsilon = _checked_epsilon(epsilon)

    def batch_loss(self, pos, neg, weight):
        return _CrossEntropyFunction.apply(pos, neg, weight, self.epsilon)

    def extra_repr(self):
        return f"epsilon={self.epsilon}"


def mixture_cross_entropy(own, head_scores, weight, log_prior, epsilon=ORIGINAL_EPSILON):
    """Cross-entropy of a Mixture of Softmaxes (docs/algorithm.md §7), the mean over rows of
    -log(sum_k pi_k p_k(own) + epsilon), computed in log space.

    ``head_scores`` (rows, K, C): each head's scores of the row's columns; ``own`` (rows,): the
    row's own column; ``weight`` (rows, C): how often each column is a negative of the row (None:
    every other column once); ``log_prior`` (rows, K): log pi. p_k is head k's softmax over the
    own column and the negatives counted by ``weight``, as in ``CrossEntropyLoss``.
    """
    epsilon = _checked_epsilon(epsilon)
    rows = torch.arange(len(own), device=own.device)
    if weight is None:  # every column once: the own one as the positive, the others as negatives
        normaliser = torch.logsumexp(head_scores, dim=2)
    else:
        total = weight.clone()
        total[rows, own] += 1.0  # the own column once, besides its count as a negative (0 unless it is sampled too)
        normaliser = torch.logsumexp(head_scores + torch.log(total).unsqueeze(1), dim=2)  # log 0: not in the softmax
    log_p_own = head_scores[rows, :, own] - normaliser  # (rows, K)
    log_p = torch.logsumexp(log_prior + log_p_own, dim=1)
    if epsilon:
        log_p = torch.logaddexp(log_p, torch.full_like(log_p, math.log(epsilon)))
    return -log_p.mean()


_LOSSES = dict(zip(LOSS_NAMES, (TOP1Loss, BPRLoss, TOP1MaxLoss, BPRMaxLoss, CrossEntropyLoss)))


def build_loss(name, bpreg=1.0):
    """The loss called ``name`` (case-insensitive, one of LOSS_NAMES); ``bpreg`` is BPR-max's λ."""
    _checked_bpreg(bpreg)
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in _LOSSES:
        raise PluginError(f"unknown loss {name!r}; valid names: {', '.join(LOSS_NAMES)}")
    return BPRMaxLoss(bpreg) if key == "bpr-max" else _LOSSES[key]()
