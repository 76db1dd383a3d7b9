"""The Mixture-of-Softmaxes head (docs/algorithm.md §7): its loss against an independent column-by-column
computation, K = 1 as the plain head, full-softmax training, probabilities and chunked scoring."""

import math

import numpy as np
import pytest
import torch

from recbole_gru4rec_plus import PluginError
from recbole_gru4rec_plus.data.session_parallel import SessionParallelBatch
from recbole_gru4rec_plus.loss import CrossEntropyLoss, mixture_cross_entropy
from recbole_gru4rec_plus.model.layers import MixtureHeads

from helpers import prepare
from test_model import SMALL, _reference_hidden

MOS = {**SMALL, "loss": "cross-entropy", "head": "mos", "mos_heads": 3, "train_batch_size": 5}
INPUTS, TARGETS = torch.tensor([3, 4, 5, 9, 3]), torch.tensor([6, 7, 6, 3, 8])
SAMPLES = torch.tensor([6, 11, 11, 2, 7, 30, 11])  # a target sampled again, samples repeating each other


def _step(model, samples=SAMPLES):
    """One training step from zero states on the fixed batch; its loss and gradients."""
    model.train()
    model.sampler.sample = lambda: samples
    model.reset_session_state()
    loss = model.calculate_loss(SessionParallelBatch(INPUTS, TARGETS, torch.ones(5, dtype=torch.bool)))
    loss.backward()
    grads = {name: p.grad.to_dense() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return loss, grads


def _reference_mixture_loss(model, supports, alpha, full_softmax=False):
    """docs/algorithm.md §7 written out: head states tanh(P_k h), weights softmax(W_pi h); each head's
    softmax over the step's columns (the rows' targets, then the samples, duplicates and all),
    log-Q subtracted per column as for the plain head; -log(sum_k pi_k p_k(target) + 1e-24),
    summed over rows and divided by the slots. ``full_softmax``: the columns are items 1..n."""
    h = _reference_hidden(model, INPUTS, [torch.zeros(5, size) for size in model.layer_sizes])
    mixture = model.mixture
    n_heads, size = mixture.n_heads, h.shape[1]
    columns = torch.arange(1, model.n_items) if full_softmax else torch.cat((TARGETS, SAMPLES))
    log_q = torch.zeros(len(columns))
    if model.logq:
        q = torch.cat((supports[columns[:5]].double(), supports[columns[5:]].double() ** alpha))
        log_q = model.logq * torch.log(q).float()
    pi = torch.softmax(h @ mixture.prior.weight.t(), dim=1)
    probability = torch.zeros(5)
    for k in range(n_heads):
        g = torch.tanh(h @ mixture.projection.weight[k * size : (k + 1) * size].t())
        scores = g @ model.item_embedding.weight[columns].t() + model.item_bias.weight[columns, 0] - log_q
        p = torch.softmax(scores, dim=1)
        own = p[torch.arange(5), TARGETS - 1] if full_softmax else p[torch.arange(5), torch.arange(5)]
        probability = probability + pi[:, k] * own
    return -torch.log(probability + 1e-24).sum() / model.n_slots


@pytest.mark.parametrize("options", [
    {},
    {"logq": 1.0, "sample_alpha": 0.5},
    {"logq": 1.0, "sample_alpha": 0.0, "layers": [12, 16], "constrained_embedding": False, "embedding": 8},
    {"n_sample": -1},
    {"n_sample": -1, "constrained_embedding": False, "embedding": 0},
], ids=["sampled", "sampled-logq", "two-layers-logq", "full-softmax", "full-softmax-one-hot"])
def test_mixture_loss_and_gradients_equal_a_column_by_column_mixture(in_tmp_dir, options):
    config, train_data, *_, model = prepare(**{**MOS, **options})
    supports = torch.bincount(train_data.dataset.inter_feat["item_id"], minlength=model.n_items)
    loss, grads = _step(model)
    expected = _reference_mixture_loss(model, supports, config["sample_alpha"], full_softmax=options.get("n_sample") == -1)
    expected.backward()
    torch.testing.assert_close(loss, expected)
    for name, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(grads[name], p.grad.to_dense(), msg=name)
    assert {name for name, _ in model.named_parameters()} >= {"mixture.projection.weight", "mixture.prior.weight"}
    assert set(grads) >= {"mixture.projection.weight", "mixture.prior.weight", "item_embedding.weight"}


@pytest.mark.parametrize("options", [{}, {"logq": 1.0}, {"n_sample": -1}], ids=["sampled", "logq", "full-softmax"])
def test_one_head_is_the_plain_softmax_head_exactly(in_tmp_dir, options):
    plain = prepare(**{**MOS, "head": "softmax", **options})[-1]
    one = prepare(**{**MOS, "mos_heads": 1, **options})[-1]
    assert one.mixture is None and plain.state_dict().keys() == one.state_dict().keys()
    for (name, a), b in zip(plain.state_dict().items(), one.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    (plain_loss, plain_grads), (one_loss, one_grads) = _step(plain), _step(one)
    assert plain_loss == one_loss and plain_grads.keys() == one_grads.keys()
    for name in plain_grads:
        assert torch.equal(plain_grads[name], one_grads[name]), name


@pytest.mark.parametrize("options", [{}, {"constrained_embedding": False, "embedding": 0}], ids=["shared", "one-hot"])
def test_full_softmax_training_of_the_plain_head_is_the_cross_entropy_over_every_item(in_tmp_dir, options):
    """n_sample: -1 with one softmax: -log(softmax over items 1..n [target] + 1e-24), summed over
    the rows and divided by the slots, against the GRU written out (test_model's reference)."""
    model = prepare(**{**MOS, "head": "softmax", "n_sample": -1, **options})[-1]
    loss, grads = _step(model, samples=torch.tensor([], dtype=torch.long))
    h = _reference_hidden(model, INPUTS, [torch.zeros(5, size) for size in model.layer_sizes])
    items = torch.arange(1, model.n_items)
    p = torch.softmax(h @ model.item_embedding.weight[items].t() + model.item_bias.weight[items, 0], dim=1)
    expected = -torch.log(p[torch.arange(5), TARGETS - 1] + 1e-24).sum() / model.n_slots
    expected.backward()
    torch.testing.assert_close(loss, expected)
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(grads[name], parameter.grad.to_dense(), msg=name)


def test_the_mixture_loss_of_one_head_is_the_plain_cross_entropy():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(6, 9, generator=generator, dtype=torch.float64, requires_grad=True)
    weight = torch.randint(0, 3, (6, 9), generator=generator).double()  # columns counted 0, 1 or 2 times
    own = torch.tensor([0, 3, 3, 8, 1, 5])
    weight[torch.arange(6), own] = torch.tensor([0.0, 1.0, 0.0, 2.0, 0.0, 1.0], dtype=torch.float64)  # an own column also sampled
    plain = CrossEntropyLoss()(own, scores, weight)
    mixture = mixture_cross_entropy(own, scores.unsqueeze(1), weight, torch.zeros(6, 1, dtype=torch.float64))
    torch.testing.assert_close(mixture, plain)
    (plain_grad,) = torch.autograd.grad(plain, scores)
    (mixture_grad,) = torch.autograd.grad(mixture, scores)
    torch.testing.assert_close(mixture_grad, plain_grad)


def test_the_mixture_loss_matches_finite_differences_and_stays_finite_at_extreme_scores():
    generator = torch.Generator().manual_seed(1)
    scores = torch.randn(4, 3, 7, generator=generator, dtype=torch.float64, requires_grad=True)
    prior = torch.randn(4, 3, generator=generator, dtype=torch.float64).log_softmax(1).requires_grad_()
    own = torch.tensor([0, 2, 6, 6])
    assert torch.autograd.gradcheck(lambda s, p: mixture_cross_entropy(own, s, None, p, epsilon=0.0), (scores, prior))
    for extreme in (1e4, -1e4):
        huge = (torch.randn(4, 3, 7, generator=generator) * extreme).requires_grad_()
        loss = mixture_cross_entropy(own, huge, None, torch.full((4, 3), -math.log(3)))
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(huge.grad).all()


def _history(model):
    return {"item_id_list": torch.tensor([[3, 4, 5, 0], [9, 0, 0, 0], [6, 7, 8, 9]]),
            "item_length": torch.tensor([3, 1, 4]), "item_id": torch.tensor([6, 2, 11])}


@pytest.mark.parametrize("model_name, options", [("GRU4RecPlus", {}), ("GRU4RecPlus", {"final_act": "tanh"})])
def test_full_sort_gives_the_mixtures_log_probabilities_in_any_chunking(in_tmp_dir, model_name, options):
    model = prepare(model_name, **{**MOS, **options})[-1].eval()
    interaction = _history(model)
    with torch.no_grad():
        log_p = model.full_sort_predict(interaction)
        output = model._encode(interaction)
        one_row_chunks = model._log_probs(output, rows_per_chunk=1)
        picked = model.predict(interaction)
    assert log_p.shape == (3, model.n_items) and torch.isneginf(log_p[:, 0]).all()
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(3))
    torch.testing.assert_close(one_row_chunks, log_p)
    torch.testing.assert_close(picked, log_p.gather(1, interaction["item_id"].unsqueeze(1)).squeeze(1))


def test_hrnn_ranks_by_a_mixture_whose_heads_read_the_session_state_and_share_the_user_term(in_tmp_dir):
    """HRNN's log p(i) = log sum_k pi_k softmax_k(tanh(P_k s) . W + b + u . U)[i], written out."""
    options = {**MOS, "session_gap": 3600, "train_batch_size": 2, "user_to_output": True, "eval_batch_size": 64}
    _, _, valid_data, _, model = prepare("HRNN", **options)
    model.eval()
    with torch.no_grad():
        interaction = next(iter(valid_data))[0]
        session, user = model._encode(interaction)
        size, mixture = session.shape[1], model.mixture
        pi = torch.softmax(session @ mixture.prior.weight.t(), dim=1)
        user_term = user @ model.user_output.weight.t()
        probability = torch.zeros(len(session), model.n_items)
        for k in range(mixture.n_heads):
            g = torch.tanh(session @ mixture.projection.weight[k * size : (k + 1) * size].t())
            scores = g @ model.item_embedding.weight.t() + model.item_bias.weight[:, 0] + user_term
            scores[:, 0] = float("-inf")
            probability += pi[:, k : k + 1] * torch.softmax(scores, dim=1)
        torch.testing.assert_close(model.full_sort_predict(interaction)[:, 1:], probability[:, 1:].log())


def test_hrnn_trains_and_ranks_with_the_mixture_head(in_tmp_dir):
    options = {**MOS, "session_gap": 3600, "train_batch_size": 2, "user_to_output": True, "hrnn_mode": "all",
               "eval_batch_size": 64}
    _, train_data, valid_data, _, model = prepare("HRNN", **options)
    model.train()
    for batch in train_data:
        loss = model.calculate_loss(batch)
        loss.backward()
        assert torch.isfinite(loss) and model.mixture.projection.weight.grad is not None
        break
    model.eval()
    with torch.no_grad():
        interaction = next(iter(valid_data))[0]
        log_p = model.full_sort_predict(interaction)
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(len(log_p)))


@pytest.mark.parametrize("options, message", [
    ({"loss": "bpr-max"}, "head: mos"),
    ({"loss": "top1"}, "head: mos"),
    ({"mos_heads": 0}, "mos_heads"),
    ({"head": "mixture"}, "head"),
    ({"n_sample": -2}, "n_sample"),
    ({"n_sample": -1, "logq": 1.0}, "n_sample: -1"),
])
def test_bad_head_options_are_one_clear_error(in_tmp_dir, options, message):
    with pytest.raises(PluginError, match=message):
        prepare(**{**MOS, **options})


def _rook_kl(folder, hidden, heads, seed):
    """KL(truth ‖ model) on the test rows after 4 epochs of full-softmax training on rook walks."""
    from recbole_gru4rec_plus.data.synthetic import markov_kl, markov_sessions, rook_moves, write_atomic_inter
    from recbole_gru4rec_plus.trainer import get_trainer_class

    moves = rook_moves(8)
    write_atomic_inter(str(folder), "rook", *markov_sessions(moves, 10_000, session_length=10, seed=0))
    config, train_data, _, test_data, model = prepare(
        dataset="rook", data_path=str(folder), load_col={"inter": ["user_id", "item_id", "timestamp"]},
        loss="cross-entropy", n_sample=-1, layers=[hidden], constrained_embedding=False, learning_rate=0.2,
        train_batch_size=64, head="mos" if heads > 1 else "softmax", mos_heads=heads, seed=seed)
    trainer = get_trainer_class(config.model_class)(config, model)
    for epoch in range(4):
        trainer._train_epoch(train_data, epoch)
    return markov_kl(model, test_data, moves)


def test_the_mixture_lifts_the_softmax_bottleneck_at_a_small_hidden_size_only(in_tmp_dir):
    """A rook's walk on an 8 × 8 board ("this row or this column"): at d = 8 one softmax cannot
    represent it (KL ~0.75-0.79 on seeds 1-3) and 4 heads can (0.14-0.25); at d = 64 the plain
    head represents it (~0.10-0.11) and the mixture adds nothing (~0.13)."""
    small = {heads: _rook_kl(in_tmp_dir, 8, heads, seed=1) for heads in (1, 4)}
    large = {heads: _rook_kl(in_tmp_dir, 64, heads, seed=1) for heads in (1, 4)}
    assert small[4] < 0.5 * small[1]
    assert large[1] < 0.5 * small[1]  # the plain head's trouble at d = 8 was its size, not the data
    assert large[4] > 0.8 * large[1]


@pytest.mark.parametrize("head", ["softmax", "mos"])
def test_full_sort_log_probs_are_the_trained_distribution(in_tmp_dir, head):
    """The plain head's log p is log softmax of its final activation's scores over items 1..n."""
    model = prepare(**{**MOS, "head": head, "final_act": "tanh"})[-1].eval()
    interaction = _history(model)
    with torch.no_grad():
        log_p = model.full_sort_log_probs(interaction)
        h = model._encode(interaction)
        items, bias = model.item_embedding.weight[1:], model.item_bias.weight[1:, 0]
        if head == "softmax":  # log softmax of tanh(h . W + b) over items 1..n
            expected = torch.log_softmax(torch.tanh(h @ items.t() + bias), dim=1)
        else:  # the mixture written out: g_k = tanh(P_k h), pi = softmax(W_pi h), sum_k pi_k softmax(tanh(g_k . W + b))
            k, size = model.mixture.n_heads, h.shape[1]
            heads = torch.tanh(h @ model.mixture.projection.weight.t()).view(len(h), k, size)
            pi = torch.softmax(h @ model.mixture.prior.weight.t(), dim=1)
            per_head = torch.softmax(torch.tanh(heads @ items.t() + bias), dim=2)
            expected = torch.log((pi[:, :, None] * per_head).sum(1))
    assert torch.isneginf(log_p[:, 0]).all()
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(3))
    torch.testing.assert_close(log_p[:, 1:], expected)


def test_rook_moves_on_a_rectangular_board_go_along_the_row_or_the_column():
    from recbole_gru4rec_plus.data.synthetic import rook_moves

    moves = rook_moves(2, 3)  # squares 0 1 2 / 3 4 5
    assert np.allclose(moves.sum(axis=1), 1.0)
    assert np.flatnonzero(moves[4]).tolist() == [1, 3, 5]  # its column above, its row either side
    assert np.allclose(moves[4][[1, 3, 5]], 1 / 3)


def test_every_head_starts_near_the_plain_head_and_the_heads_differ():
    """P_k = identity + noise: each head state g_k = tanh(P_k h) starts close to tanh(h) (cosine
    well above what K random projections give, ~0), and no two heads are the same."""
    torch.manual_seed(0)
    hidden = torch.rand(256, 16) * 2 - 1
    heads = MixtureHeads(16, 4)
    with torch.no_grad():
        states = heads(hidden)[0].view(256, 4, 16)
    cosine = torch.nn.functional.cosine_similarity(states, torch.tanh(hidden)[:, None, :], dim=2)
    assert float(cosine.mean()) > 0.6
    assert float((states[:, 0] - states[:, 1]).abs().mean()) > 0.05
