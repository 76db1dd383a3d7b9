"""Specification of the ranking losses in recbole_gru4rec_plus.loss."""

import math

import pytest
import torch

from recbole_gru4rec_plus.errors import PluginError
from recbole_gru4rec_plus.loss import (
    LOSS_NAMES,
    BPRLoss,
    BPRMaxLoss,
    CrossEntropyLoss,
    TOP1Loss,
    TOP1MaxLoss,
    build_loss,
)

torch.set_num_threads(1)


# ---- reference formulas, one row at a time, in plain Python ----------------------------------

def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def _softmax(xs):
    top = max(xs)
    exps = [math.exp(x - top) for x in xs]
    return [e / sum(exps) for e in exps]


def reference_row(name, pos, negs, bpreg=1.0, epsilon=1e-24):
    """One row's loss; BPR-max and cross-entropy as the original writes them, -log(... + 1e-24)."""
    n = len(negs)
    s = _softmax(negs)
    if name == "top1":
        return sum(_sigmoid(r - pos) + _sigmoid(r * r) for r in negs) / n
    if name == "bpr":
        return -sum(math.log(_sigmoid(pos - r)) for r in negs) / n
    if name == "top1-max":
        return sum(sj * (_sigmoid(r - pos) + _sigmoid(r * r)) for sj, r in zip(s, negs))
    if name == "bpr-max":
        return -math.log(sum(sj * _sigmoid(pos - r) for sj, r in zip(s, negs)) + epsilon) + bpreg * sum(
            sj * r * r for sj, r in zip(s, negs)
        )
    if name == "cross-entropy":
        return -math.log(math.exp(pos) / (math.exp(pos) + sum(math.exp(r) for r in negs)) + epsilon)
    raise ValueError(name)


def reference(name, pos, neg, bpreg=1.0):
    rows = [reference_row(name, p, ns, bpreg) for p, ns in zip(pos, neg)]
    return sum(rows) / len(rows)


# Row 0: the positive beats every negative; row 1: it does not (BPR-max treats the two apart).
POS = [1.5, -1.0]
NEG = [[0.2, -0.3, 1.1], [0.7, -1.5, 0.0]]


def _random_case(b=3, n=5, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    pos = torch.randn(b, generator=gen, dtype=dtype).requires_grad_()
    neg = torch.randn(b, n, generator=gen, dtype=dtype).requires_grad_()
    return pos, neg


# ---- values ----------------------------------------------------------------------------------

def _assert_same_value_and_gradient(value, expected, inputs, expected_inputs):
    """Two ways of computing one loss agree in value and in the gradient of their score inputs."""
    value.backward()
    expected.backward()
    assert value.item() == pytest.approx(expected.item(), rel=1e-12)
    torch.testing.assert_close(inputs.grad, expected_inputs.grad)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_matches_hand_computed_value(name):
    loss = build_loss(name)(torch.tensor(POS, dtype=torch.float64), torch.tensor(NEG, dtype=torch.float64))
    assert loss.item() == pytest.approx(reference(name, POS, NEG), rel=1e-12)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_is_a_scalar_in_float32(name):
    loss = build_loss(name)(torch.tensor(POS), torch.tensor(NEG))
    assert loss.shape == () and loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference(name, POS, NEG), rel=1e-5)


def test_bpr_max_without_regulariser_is_minus_log_of_weighted_sigmoids():
    loss = BPRMaxLoss(bpreg=0.0, epsilon=0.0)(torch.tensor(POS, dtype=torch.float64), torch.tensor(NEG, dtype=torch.float64))
    rows = [
        -math.log(sum(sj * _sigmoid(p - r) for sj, r in zip(_softmax(ns), ns))) for p, ns in zip(POS, NEG)
    ]
    assert loss.item() == pytest.approx(sum(rows) / len(rows), rel=1e-12)


def test_bpr_max_regulariser_scales_with_bpreg():
    pos, neg = torch.tensor(POS, dtype=torch.float64), torch.tensor(NEG, dtype=torch.float64)
    assert BPRMaxLoss(bpreg=0.25)(pos, neg).item() == pytest.approx(reference("bpr-max", POS, NEG, 0.25), rel=1e-12)


def test_bpr_max_is_exact_with_the_positive_far_below_the_negatives():
    # pos = -1e4 under negatives (1e4, 0): sum_j s_j sigma(r_i - r_j) ~ 2 exp(-2e4), far below any float.
    pos = torch.tensor([-1e4], dtype=torch.float64)
    neg = torch.tensor([[1e4, 0.0]], dtype=torch.float64)
    assert BPRMaxLoss(bpreg=0.0, epsilon=0.0)(pos, neg).item() == pytest.approx(2e4 - math.log(2.0), rel=1e-12)


@pytest.mark.parametrize("name", ["bpr-max", "cross-entropy"])
def test_like_the_original_a_hopeless_row_costs_at_most_log_1e24_and_gives_almost_no_gradient(name):
    # -log(A + 1e-24) with A ~ exp(-2e4): the original's cap, computed without underflow
    loss = build_loss(name, bpreg=0.0)
    pos = torch.tensor([-1e4, 1.0], dtype=torch.float64, requires_grad=True)
    neg = torch.tensor([[1e4, 0.0], [0.5, -0.5]], dtype=torch.float64, requires_grad=True)
    value = loss(pos, neg)
    exact = reference_row(name, 1.0, [0.5, -0.5], bpreg=0.0)
    assert value.item() == pytest.approx((-math.log(1e-24) + exact) / 2, rel=1e-12)
    value.backward()
    assert pos.grad[0].abs() < 1e-30 and neg.grad[0].abs().max() < 1e-30
    assert pos.grad[1].abs() > 1e-3  # an ordinary row is trained as usual


@pytest.mark.parametrize("name", ["bpr-max", "cross-entropy"])
def test_epsilon_zero_gives_the_exact_loss(name):
    loss = (BPRMaxLoss(bpreg=0.5, epsilon=0.0) if name == "bpr-max" else CrossEntropyLoss(epsilon=0.0))
    value = loss(torch.tensor(POS, dtype=torch.float64), torch.tensor(NEG, dtype=torch.float64))
    rows = [reference_row(name, p, ns, 0.5, epsilon=0.0) for p, ns in zip(POS, NEG)]
    assert value.item() == pytest.approx(sum(rows) / len(rows), rel=1e-12)


def test_bpr_max_is_exact_with_the_positive_far_above_the_negatives():
    # pos = 1e4 over negatives (-1e4, 0): every sigma(r_i - r_j) is 1, so the loss is 0.
    pos = torch.tensor([1e4], dtype=torch.float64)
    neg = torch.tensor([[-1e4, 0.0]], dtype=torch.float64)
    assert BPRMaxLoss(bpreg=0.0)(pos, neg).item() == pytest.approx(0.0, abs=1e-12)


# ---- masks -----------------------------------------------------------------------------------

def _padded(neg, hole_columns, fill):
    """``neg`` with one extra column per row, at ``hole_columns[row]``, holding ``fill``, and its mask."""
    b, n = neg.shape
    padded = torch.empty(b, n + 1, dtype=neg.dtype)
    mask = torch.ones(b, n + 1, dtype=torch.bool)
    for row, hole in enumerate(hole_columns):
        mask[row, hole] = False
        padded[row, hole] = fill
        padded[row, mask[row]] = neg[row]
    return padded, mask


# fill 1e3: masked columns far above the negatives (the losses then take the row max over the negatives only)
@pytest.mark.parametrize("fill", [7.0, 1e3])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_masked_columns_change_nothing(name, fill):
    pos, neg = _random_case()
    padded, mask = _padded(neg.detach(), [0, 5, 2], fill=fill)
    loss = build_loss(name)
    assert loss(pos, padded, mask).item() == pytest.approx(loss(pos, neg).item(), rel=1e-12)


@pytest.mark.parametrize("fill", [7.0, 1e3])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_masked_columns_get_zero_gradient_and_the_others_are_unchanged(name, fill):
    pos, neg = _random_case()
    padded, mask = _padded(neg.detach(), [0, 5, 2], fill=fill)
    padded.requires_grad_()
    loss = build_loss(name)
    loss(pos, padded, mask).backward()
    loss(pos, neg).backward()
    assert torch.all(padded.grad[~mask] == 0)
    torch.testing.assert_close(padded.grad[mask].view_as(neg), neg.grad)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_full_score_matrix_with_diagonal_mask_equals_explicit_negatives(name):
    b, n_sample = 4, 3
    scores = torch.randn(b, b + n_sample, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    full = scores.clone().requires_grad_()
    explicit = scores.clone().requires_grad_()
    off_diagonal = ~torch.eye(b, b + n_sample, dtype=torch.bool)
    loss = build_loss(name)

    value = loss(full.diagonal(), full, off_diagonal)
    expected = loss(explicit.diagonal(), explicit[off_diagonal].view(b, b + n_sample - 1))
    _assert_same_value_and_gradient(value, expected, full, explicit)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_mask_changed_in_place_between_calls_is_taken_into_account(name):
    pos, neg = _random_case()
    mask = torch.ones_like(neg, dtype=torch.bool)
    loss = build_loss(name)
    loss(pos, neg, mask)
    mask[:, 1] = False
    assert loss(pos, neg, mask).item() == pytest.approx(build_loss(name)(pos, neg, mask.clone()).item(), rel=1e-12)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_same_mask_works_for_float32_and_float64(name):
    pos, neg = _random_case()
    mask = ~torch.eye(*neg.shape, dtype=torch.bool)
    loss = build_loss(name)
    in_float64 = loss(pos, neg, mask)
    in_float32 = loss(pos.float(), neg.float(), mask)
    assert in_float32.dtype == torch.float32
    assert in_float32.item() == pytest.approx(in_float64.item(), rel=1e-5)


# ---- multiplicity (float) masks ----------------------------------------------------------------

def _multiplicities(shape, seed=4):
    """Whole-number column multiplicities 0..3; column 0 is a negative of every row."""
    weight = torch.randint(0, 4, shape, generator=torch.Generator().manual_seed(seed)).double()
    weight[:, 0] = weight[:, 0].clamp(min=1)
    return weight


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_multiplicity_mask_equals_repeated_columns(name):
    pos, neg = _random_case(b=4, n=5, seed=5)
    with torch.no_grad():
        pos[0], pos[1] = 3.0, -3.0  # rows above and under all their negatives
    weight = _multiplicities(neg.shape)
    copies = 3  # every column repeated 3 times; a bool mask keeps weight[i, j] of the copies
    repeated_mask = torch.arange(copies).repeat(neg.shape[1]) < weight.repeat_interleave(copies, dim=1)
    loss = build_loss(name, bpreg=0.7)

    value = loss(pos, neg, weight)
    value.backward()
    grads = pos.grad.clone(), neg.grad.clone()
    pos.grad = neg.grad = None
    expected = loss(pos, neg.repeat_interleave(copies, dim=1), repeated_mask)
    expected.backward()

    assert value.item() == pytest.approx(expected.item(), rel=1e-12)
    torch.testing.assert_close(grads, (pos.grad, neg.grad))


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_multiplicity_mask_of_zeros_and_ones_equals_the_bool_mask(name):
    pos, neg = _random_case(b=3, n=6, seed=6)
    mask = torch.rand(neg.shape, generator=torch.Generator().manual_seed(7)) > 0.5
    mask[:, 2] = True
    loss = build_loss(name)
    as_bool = loss(pos, neg, mask)
    assert loss(pos, neg, mask.double()).item() == pytest.approx(as_bool.item(), rel=1e-12)
    assert loss(pos, neg, mask.long()).item() == pytest.approx(as_bool.item(), rel=1e-12)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_gradient_with_a_multiplicity_mask_matches_finite_differences(name):
    pos, neg = _random_case(b=4, n=6, seed=8)
    with torch.no_grad():
        pos[0], pos[1] = 3.0, -3.0
    weight = _multiplicities(neg.shape, seed=9) * 0.75  # fractional weights work the same way
    loss = build_loss(name, bpreg=0.7)
    assert torch.autograd.gradcheck(lambda p, n: loss(p, n, weight), (pos, neg))


# ---- positives given as column indices ---------------------------------------------------------

@pytest.mark.parametrize("weighted", [False, True], ids=["bool-mask", "multiplicities"])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_positive_column_indices_equal_the_gathered_scores(name, weighted):
    b, n = 4, 7
    scores = torch.randn(b, n, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        scores[0, 3] = 4.0  # a positive above all its negatives
    own = torch.tensor([3, 0, 6, 3])
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[torch.arange(b), own] = False
    mask = _multiplicities((b, n)) * mask if weighted else mask
    by_index, by_value = scores.clone().requires_grad_(), scores.clone().requires_grad_()
    loss = build_loss(name, bpreg=0.7)

    value = loss(own, by_index, mask)
    expected = loss(by_value[torch.arange(b), own], by_value, mask)
    _assert_same_value_and_gradient(value, expected, by_index, by_value)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_gradient_with_positive_column_indices_matches_finite_differences(name):
    _, scores = _random_case(b=3, n=6, seed=11)
    own = torch.tensor([0, 4, 2])
    mask = _multiplicities(scores.shape, seed=12)
    mask[torch.arange(3), own] = 0
    mask[:, 1] = 1  # every row keeps a negative
    loss = build_loss(name, bpreg=0.7)
    assert torch.autograd.gradcheck(lambda s: loss(own, s, mask), (scores,))


# ---- gradients -------------------------------------------------------------------------------

@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_gradient_matches_finite_differences(name, masked):
    pos, neg = _random_case(b=4, n=6, seed=2)
    with torch.no_grad():
        pos[0] = 3.0  # a row whose positive beats all its negatives
        pos[1] = -3.0  # and one where it beats none
    mask = torch.rand(neg.shape, generator=torch.Generator().manual_seed(3)) > 0.4 if masked else None
    if mask is not None:
        mask[:, 0] = True  # every row keeps at least one negative
    loss = build_loss(name, bpreg=0.7)
    assert torch.autograd.gradcheck(lambda p, n: loss(p, n, mask), (pos, neg))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_extreme_scores_give_finite_loss_and_gradients(name, dtype):
    big = 1e4
    pos = torch.tensor([big, -big, big, -big, 0.0, big, -big], dtype=dtype, requires_grad=True)
    neg = torch.tensor(
        [
            [-big, -big, big],
            [big, big, -big],
            [big, 0.0, -big],
            [-big, 0.0, big],
            [big, -big, 0.0],
            [-big, big, 0.0],
            [big, -big, big],
        ],
        dtype=dtype,
        requires_grad=True,
    )
    mask = torch.tensor([[True, False, True]] * 7)
    loss = build_loss(name)
    for neg_mask in (None, mask, mask * 2.0):
        pos.grad = neg.grad = None
        value = loss(pos, neg, neg_mask)
        value.backward()
        assert torch.isfinite(value)
        assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()


# ---- factory ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name, cls",
    [
        ("top1", TOP1Loss),
        ("bpr", BPRLoss),
        ("top1-max", TOP1MaxLoss),
        ("bpr-max", BPRMaxLoss),
        ("cross-entropy", CrossEntropyLoss),
        ("BPR-Max", BPRMaxLoss),
        ("Cross-Entropy", CrossEntropyLoss),
    ],
)
def test_build_loss_maps_names_to_classes(name, cls):
    assert type(build_loss(name)) is cls


def test_loss_names_are_the_five_losses():
    assert LOSS_NAMES == ("top1", "bpr", "top1-max", "bpr-max", "cross-entropy")


def test_build_loss_passes_bpreg_to_bpr_max():
    assert build_loss("bpr-max", bpreg=0.3).bpreg == 0.3


@pytest.mark.parametrize("name", ["bpr_max", "softmax", "", None])
def test_unknown_loss_name_raises_plugin_error_listing_valid_names(name):
    with pytest.raises(PluginError) as error:
        build_loss(name)
    message = str(error.value)
    assert "\n" not in message
    assert all(valid in message for valid in LOSS_NAMES)


@pytest.mark.parametrize("bpreg", [-0.1, float("nan"), "much"])
def test_invalid_bpreg_raises_plugin_error(bpreg):
    with pytest.raises(PluginError, match="bpreg"):
        build_loss("bpr-max", bpreg=bpreg)
    with pytest.raises(PluginError, match="bpreg"):
        BPRMaxLoss(bpreg=bpreg)


def test_negative_bpreg_is_rejected_whatever_the_loss():
    with pytest.raises(PluginError, match="bpreg"):
        build_loss("top1", bpreg=-1.0)
