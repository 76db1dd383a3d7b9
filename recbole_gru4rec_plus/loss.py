"""GRU4Rec's ranking losses (TOP1, BPR, TOP1-max, BPR-max, cross-entropy) as plain modules.

They only see scores, so any RecBole model can use them: ``loss(pos_score, neg_score, neg_mask)``
with ``pos_score`` (B,), ``neg_score`` (B, N) and ``neg_mask`` (B, N) bool, where False means
"not a negative of this row" (no contribution, no gradient) and None means all N are negatives.
Every row needs at least one negative, masked scores must be finite, and the loss is the row mean.
Everything runs in log space or in forms that cannot overflow or underflow, so scores of +-1e4 give
finite losses and gradients. A mask that is passed again unchanged is converted to float only once.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .errors import PluginError

LOSS_NAMES = ("top1", "bpr", "top1-max", "bpr-max", "cross-entropy")


def _checked_bpreg(bpreg):
    """BPR-max's regularisation strength as a float; PluginError unless it is a number >= 0."""
    try:
        value = float(bpreg)
    except (TypeError, ValueError):
        value = float("nan")
    if not value >= 0:
        raise PluginError(f"bpreg must be a number >= 0, got {bpreg!r}")
    return value


def _negative_mean(terms, weights):
    """Per-row mean of ``terms`` over the negatives (``weights``: 1 on negatives, 0 elsewhere)."""
    if weights is None:
        return terms.mean(1)
    return (terms * weights).sum(1) / weights.sum(1)


def _softmax_parts(neg, additive):
    """Unnormalised softmax over each row's negatives: (x, m, e, z) with x the scores (-inf off the
    negatives), m their detached row max, e = exp(x - m) and z = e.sum(1).

    So s = e / z and logsumexp(x) = m + log z; keeping e (not s) saves a pass, and unlike
    torch.logsumexp the backward reuses e instead of recomputing the exponential.
    """
    x = neg if additive is None else neg + additive
    m = x.detach().amax(1, keepdim=True)
    e = (x - m).exp()
    return x, m, e, e.sum(1)


def _log_weighted_sigmoid_sum(pos, x, m, e):
    """log sum_j e_j sigma(p - x_j), with no underflow: on rows where p < m it is computed as
    (p - m) + log sum_j sigma(x_j - p), since e_j sigma(p - x_j) = exp(p - m) sigma(x_j - p);
    either way the sum holds a term >= 1/2 (the best negative), and one sigmoid pass suffices."""
    p = pos.unsqueeze(1)
    below = (p.detach() < m).to(e.dtype)  # 1 on rows whose positive is under the best negative
    terms = torch.sigmoid((p - x) * (1 - 2 * below)) * torch.addcmul(below, e, 1 - below)
    return ((p - m) * below).squeeze(1) + terms.sum(1).log()


def _top1_terms(pos, neg):
    """sigma(r_j - r_i) + sigma(r_j^2): ranks negatives below the positive and pulls them to 0."""
    return torch.sigmoid(neg - pos.unsqueeze(1)) + torch.sigmoid(neg.square())


class _RankingLoss(nn.Module):
    """Shared call: converts the bool mask (cached per mask tensor), returns the mean row loss.

    Subclasses set ``additive_mask`` (True: 0 / -inf added to the scores; False: 0 / 1 weights)
    and implement ``row_loss(pos, neg, mask)`` with that float mask, or None for no mask.
    """

    additive_mask = False

    def __init__(self):
        super().__init__()
        self._mask_cache = None  # (bool mask, its version, dtype, float mask)

    def forward(self, pos_score, neg_score, neg_mask=None):
        mask = None if neg_mask is None else self._float_mask(neg_mask, neg_score.dtype)
        return self.row_loss(pos_score, neg_score, mask).mean()

    def _float_mask(self, neg_mask, dtype):
        # Bool masks are slow to use on CPU; the caller's constant mask is converted only once.
        version = None if neg_mask.is_inference() else neg_mask._version
        cache = self._mask_cache
        if cache is not None and cache[0] is neg_mask and cache[1:3] == (version, dtype):
            return cache[3]
        if self.additive_mask:
            mask = torch.where(neg_mask, 0.0, float("-inf")).to(dtype)
        else:
            mask = neg_mask.to(dtype)
        if version is not None:
            self._mask_cache = (neg_mask, version, dtype, mask)
        return mask

    def row_loss(self, pos, neg, mask):
        raise NotImplementedError


class TOP1Loss(_RankingLoss):
    """TOP1: mean over negatives of sigma(r_j - r_i) + sigma(r_j^2).

    GRU4Rec's (2016) ranking loss, with a regulariser that keeps negative scores near zero."""

    def row_loss(self, pos, neg, mask):
        return _negative_mean(_top1_terms(pos, neg), mask)


class BPRLoss(_RankingLoss):
    """BPR: mean over negatives of -log sigma(r_i - r_j).

    The classic pairwise loss; its gradient fades once most negatives are ranked low."""

    def row_loss(self, pos, neg, mask):
        return -_negative_mean(F.logsigmoid(pos.unsqueeze(1) - neg), mask)


class TOP1MaxLoss(_RankingLoss):
    """TOP1-max: the TOP1 terms weighted by s_j, the softmax of the negative scores.

    Focusing on the highest-scored negatives keeps the gradient alive with many negatives."""

    additive_mask = True

    def row_loss(self, pos, neg, mask):
        _, _, e, z = _softmax_parts(neg, mask)
        return (e * _top1_terms(pos, neg)).sum(1) / z


class BPRMaxLoss(_RankingLoss):
    """BPR-max: -log sum_j s_j sigma(r_i - r_j) + bpreg * sum_j s_j r_j^2, s = softmax of negatives.

    GRU4Rec's (2018) max-style BPR, with a score regulariser of strength ``bpreg``."""

    additive_mask = True

    def __init__(self, bpreg=1.0):
        super().__init__()
        self.bpreg = _checked_bpreg(bpreg)

    def row_loss(self, pos, neg, mask):
        x, m, e, z = _softmax_parts(neg, mask)
        # -log sum_j s_j sigma(...) = log z - log sum_j e_j sigma(...)
        loss = z.log() - _log_weighted_sigmoid_sum(pos, x, m, e)
        if self.bpreg:
            loss = loss + self.bpreg * (e * neg.square()).sum(1) / z
        return loss

    def extra_repr(self):
        return f"bpreg={self.bpreg}"


class CrossEntropyLoss(_RankingLoss):
    """Cross-entropy of the positive among itself and its negatives (sampled softmax):
    -log(exp(r_i) / (exp(r_i) + sum_j exp(r_j))), via logsumexp so it never overflows."""

    additive_mask = True

    def row_loss(self, pos, neg, mask):
        _, m, _, z = _softmax_parts(neg, mask)
        return torch.logaddexp(pos, m.squeeze(1) + z.log()) - pos


_LOSSES = dict(zip(LOSS_NAMES, (TOP1Loss, BPRLoss, TOP1MaxLoss, BPRMaxLoss, CrossEntropyLoss)))


def build_loss(name, bpreg=1.0):
    """The loss called ``name`` (case-insensitive, one of LOSS_NAMES); ``bpreg`` is BPR-max's λ."""
    _checked_bpreg(bpreg)
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in _LOSSES:
        raise PluginError(f"unknown loss {name!r}; valid names: {', '.join(LOSS_NAMES)}")
    return BPRMaxLoss(bpreg) if key == "bpr-max" else _LOSSES[key]()
