"""GRU4RecPlus's training step and prediction against independent computations (docs/algorithm.md §1-§3)."""

import pytest
import torch
import torch.nn.functional as F

from recbole_gru4rec_plus import PluginError
from recbole_gru4rec_plus.data.session_parallel import SessionParallelBatch

from helpers import prepare

SMALL = {"user_inter_num_interval": "[0,40)", "n_sample": 16, "train_batch_size": 2}
VARIANTS = [
    {},
    {"constrained_embedding": False, "embedding": 0},
    {"constrained_embedding": False, "embedding": 24},
    {"layers": [32, 16], "constrained_embedding": False, "embedding": 8},
    {"layers": [16, 16], "constrained_embedding": False, "embedding": 0},
]


def _model(**options):
    return prepare(**{**SMALL, **options})[-1]


def _feed(model, slot_sessions):
    """Feed equal-length sessions, one per slot, step by step through calculate_loss."""
    sessions = torch.tensor(slot_sessions)
    for position in range(sessions.shape[1] - 1):
        starts = torch.full((len(sessions),), position == 0)
        model.calculate_loss(SessionParallelBatch(sessions[:, position], sessions[:, position + 1], starts))
    return sessions


# ---- an independent GRU4Rec step, written from the original's equations ------------------------


def _reference_hidden(model, inputs, states):
    """The last layer's new state, with torch.nn.GRUCell (and the one-hot layer's own equations)."""
    layers, x, new_states = list(model.gru_layers), None, []
    if model.one_hot_layer is not None:
        first, h = model.one_hot_layer, states[0]
        H = first.hidden_size
        V, W = first.item_gates.weight[inputs] + first.input_bias, first.hidden_weight
        r = torch.sigmoid(V[:, :H] + h @ W[:, :H])
        z = torch.sigmoid(V[:, H : 2 * H] + h @ W[:, H : 2 * H])
        n = torch.tanh(V[:, 2 * H :] + (r * h) @ W[:, 2 * H :])
        x = (1 - z) * n + z * h
        new_states.append(x)
    elif model.constrained_embedding:
        x = model.item_embedding.weight[inputs]
    else:
        x = model.input_embedding.weight[inputs]
    for layer, state in zip(layers, states[len(new_states) :]):
        cell = torch.nn.GRUCell(layer.input_size, layer.hidden_size)
        cell.weight_ih, cell.bias_ih = layer.input_weight, layer.input_bias
        cell.weight_hh, cell.bias_hh = torch.nn.Parameter(layer.hidden_weight.t()), layer.hidden_bias
        x = cell(x, state)
        new_states.append(x)
    return x


def _reference_loss(model, batch, samples, supports, alpha, states):
    """The original's step loss (docs/algorithm.md §2-§3): columns are the rows' targets, then the samples,
    duplicates and all; score = h·W + b; log-Q subtracts logq·log Q per column, Q = supp for the
    in-batch columns and supp^α for the sampled ones (the original takes the first B columns as
    the in-batch ones, also at the tail; logq_tail: exact takes the rows' targets); every column
    but a row's own is a negative; the step loss is the rows' sum over B, the number of slots."""
    h = _reference_hidden(model, batch.inputs, states)
    columns = torch.cat((batch.targets, samples))
    scores = h @ model.item_embedding.weight[columns].t() + model.item_bias.weight[columns, 0]
    if model.logq:
        in_batch = model.n_slots if model.logq_tail_as_original else len(batch.targets)
        q = torch.cat((supports[columns[:in_batch]].double(), supports[columns[in_batch:]].double() ** alpha))
        scores = scores - model.logq * torch.log(q).float()
    scores = _activation(model.final_act)(scores)
    n_rows = len(batch.targets)
    own = torch.eye(n_rows, scores.shape[1], dtype=torch.bool)
    positive, negative = scores[own][:, None], ~own  # every column but a row's own is a negative
    weights = torch.softmax(scores.masked_fill(own, float("-inf")), dim=1)  # the -max losses: over negatives only
    top1 = torch.sigmoid(scores - positive) + torch.sigmoid(scores**2)
    loss = model.loss_fct.__class__.__name__
    if loss == "CrossEntropyLoss":  # the original: softmax over all columns
        rows = -torch.log(torch.softmax(scores, dim=1)[own] + 1e-24)
    elif loss == "BPRMaxLoss":
        rows = -torch.log((torch.sigmoid(positive - scores) * weights).sum(1) + 1e-24) \
            + model.loss_fct.bpreg * (scores**2 * weights).sum(1)
    elif loss == "TOP1MaxLoss":
        rows = (top1 * weights).sum(1)
    elif loss == "TOP1Loss":
        rows = (top1 * negative).sum(1) / negative.sum(1)
    else:
        assert loss == "BPRLoss", loss
        rows = -(torch.log(torch.sigmoid(positive - scores) + 1e-24) * negative).sum(1) / negative.sum(1)
    return rows.sum() / model.n_slots


def _activation(name):
    """A final activation written out from its name (linear, tanh, relu, leaky-<slope>, elu-<alpha>)."""
    kind, _, parameter = name.partition("-")
    value = float(parameter) if parameter else None
    return {"linear": lambda x: x, "tanh": torch.tanh, "relu": lambda x: torch.where(x > 0, x, 0.0),
            "leaky": lambda x: torch.where(x >= 0, x, value * x),
            "elu": lambda x: torch.where(x > 0, x, value * (torch.exp(x) - 1))}[kind]


LOSS_SETTINGS = [
    {"loss": "bpr-max"},
    {"loss": "cross-entropy"},
    {"loss": "cross-entropy", "logq": 1.0, "sample_alpha": 0.5},
    {"loss": "cross-entropy", "logq": 1.0, "sample_alpha": 0.5, "logq_tail": "exact"},
    {"loss": "cross-entropy", "logq": 0.7, "sample_alpha": 0.0},
    {"loss": "top1-max", "final_act": "tanh"},
    {"loss": "bpr", "final_act": "leaky-0.1", "constrained_embedding": False, "embedding": 24},
    {"loss": "top1", "final_act": "relu", "constrained_embedding": False, "embedding": 0},
    {"loss": "bpr-max", "layers": [16, 12], "constrained_embedding": False, "embedding": 0},
]


@pytest.mark.parametrize("options", LOSS_SETTINGS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("tail", [False, True], ids=["all-slots", "tail"])
def test_training_loss_and_gradients_equal_the_originals_column_by_column_step(in_tmp_dir, options, tail):
    config, train_data, *_, model = prepare(**{**SMALL, "train_batch_size": 5, **options})
    model.train()
    supports = torch.bincount(train_data.dataset.inter_feat["item_id"], minlength=model.n_items)
    # repeated targets, a target that is also an input and a sample, samples repeating each other
    inputs, targets = torch.tensor([3, 4, 5, 9, 3]), torch.tensor([6, 7, 6, 3, 8])
    samples = torch.tensor([6, 11, 11, 2, 7, 30, 11])
    slots = torch.tensor([0, 1, 3, 4]) if tail else None
    rows = slots if tail else torch.arange(5)
    batch = SessionParallelBatch(inputs[rows], targets[rows], torch.ones(len(rows), dtype=torch.bool), slots)
    model.sampler.sample = lambda: samples

    model.reset_session_state()
    loss = model.calculate_loss(batch)
    loss.backward()
    grads = {name: p.grad.to_dense() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    zero_states = [torch.zeros(len(rows), size) for size in model.layer_sizes]
    expected = _reference_loss(model, batch, samples, supports, config["sample_alpha"], zero_states)
    expected.backward()

    torch.testing.assert_close(loss, expected)
    for name, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(grads[name], p.grad.to_dense(), msg=name)


def test_log_q_gives_one_item_two_corrections_as_a_target_and_as_a_sample(in_tmp_dir):
    """An item that is a row's target and also sampled appears as two columns with different
    scores, s - logq·log supp and s - logq·α·log supp."""
    _, train_data, *_, model = prepare(**{**SMALL, "loss": "cross-entropy", "logq": 1.0, "sample_alpha": 0.5})
    model.eval()
    supports = torch.bincount(train_data.dataset.inter_feat["item_id"], minlength=model.n_items)
    batch = SessionParallelBatch(torch.tensor([3, 4]), torch.tensor([6, 7]), torch.ones(2, dtype=torch.bool))
    model.sampler.sample = lambda: torch.tensor([6])
    loss = model.calculate_loss(batch)
    expected = _reference_loss(model, batch, torch.tensor([6]), supports, 0.5,
                               [torch.zeros(2, size) for size in model.layer_sizes])
    torch.testing.assert_close(loss, expected)
    assert supports[6] > 1  # so the two corrections differ


def test_the_step_loss_is_the_rows_sum_over_all_slots(in_tmp_dir):
    *_, model = prepare(**{**SMALL, "train_batch_size": 4, "n_sample": 3})
    model.eval()
    model.sampler.sample = lambda: torch.tensor([11, 12, 13])
    full = SessionParallelBatch(torch.tensor([3, 4]), torch.tensor([5, 6]), torch.ones(2, dtype=torch.bool), torch.tensor([0, 1]))
    tail_loss = model.calculate_loss(full)
    *_, two_slots = prepare(**{**SMALL, "train_batch_size": 2, "n_sample": 3})
    two_slots.load_state_dict(model.state_dict())
    two_slots.eval()
    two_slots.sampler.sample = model.sampler.sample
    alone = two_slots.calculate_loss(SessionParallelBatch(full.inputs, full.targets, full.starts))
    torch.testing.assert_close(tail_loss, alone * 2 / 4)  # mean of 2 rows vs their sum over B = 4


def _encode(model, item_seq, item_seq_len):
    return model._encode({"item_id_list": item_seq, "item_length": item_seq_len})


def test_the_tail_steps_only_the_slots_still_in_the_batch(in_tmp_dir):
    model = _model(train_batch_size=3)
    model.eval()
    _feed(model, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    before = [state.clone() for state in model._session_state]
    model.calculate_loss(SessionParallelBatch(torch.tensor([3, 9]), torch.tensor([10, 11]),
                                              torch.zeros(2, dtype=torch.bool), torch.tensor([0, 2])))
    after = model._session_state[-1]
    torch.testing.assert_close(after[1], before[-1][1])  # slot 1 has left the batch: untouched
    torch.testing.assert_close(after[0], _encode(model, torch.tensor([[1, 2, 3]]), torch.tensor([3]))[0])
    torch.testing.assert_close(after[2], _encode(model, torch.tensor([[7, 8, 9]]), torch.tensor([3]))[0])


def test_hidden_dropout_is_carried_to_the_next_step_and_scored(in_tmp_dir):
    model = _model(dropout_p_hidden=0.5, train_batch_size=64, loss="cross-entropy", n_sample=0)
    model.train()
    inputs = torch.arange(1, 65)
    batch = SessionParallelBatch(inputs, inputs + 1, torch.ones(64, dtype=torch.bool))
    loss = model.calculate_loss(batch)
    carried = model._session_state[-1]
    assert 0.35 < (carried == 0).float().mean() < 0.65  # dropped out (a GRU state is never exactly 0)
    # the carried, dropped-out state is also the one scored: the loss recomputed from it
    scores = carried @ model.item_embedding.weight[batch.targets].t() + model.item_bias.weight[batch.targets, 0]
    torch.testing.assert_close(loss, F.cross_entropy(scores, torch.arange(64), reduction="sum") / 64)


@pytest.mark.parametrize("options", VARIANTS)
def test_stepping_a_session_gives_the_state_and_scores_of_full_sort_predict(in_tmp_dir, options):
    model = _model(**options)
    model.eval()  # no dropout, as in prediction
    sessions = _feed(model, [[5, 9, 2, 7, 3, 1], [8, 8, 4, 6, 2, 10]])
    # calculate_loss has consumed items 0..4 of each session; predict from the same items
    history = sessions[:, :-1]
    interaction = {"item_id_list": history, "item_length": torch.tensor([5, 5])}
    final_state = model._encode(interaction)
    torch.testing.assert_close(model._session_state[-1], final_state)
    scores = model.full_sort_predict(interaction)
    torch.testing.assert_close(scores, final_state @ model.item_embedding.weight.T + model.item_bias.weight.T)
    interaction["item_id"] = torch.tensor([3, 2])
    torch.testing.assert_close(model.predict(interaction), scores[[0, 1], [3, 2]])


def test_padding_after_the_history_does_not_change_the_prediction(in_tmp_dir):
    model = _model()
    model.eval()
    short = {"item_id_list": torch.tensor([[4, 5, 0, 0]]), "item_length": torch.tensor([2])}
    padded = {"item_id_list": torch.tensor([[4, 5, 77, 99]]), "item_length": torch.tensor([2])}
    torch.testing.assert_close(model.full_sort_predict(short), model.full_sort_predict(padded))


def test_state_resets_only_in_slots_that_start_a_session(in_tmp_dir):
    model = _model()
    model.eval()
    _feed(model, [[1, 2, 3], [4, 5, 6]])
    before = [state.clone() for state in model._session_state]
    model.calculate_loss(SessionParallelBatch(torch.tensor([7, 8]), torch.tensor([9, 10]), torch.tensor([True, False])))
    fresh = _encode(model, torch.tensor([[7]]), torch.tensor([1]))
    torch.testing.assert_close(model._session_state[-1][0], fresh[0])
    carried = _encode(model, torch.tensor([[4, 5, 8]]), torch.tensor([3]))
    torch.testing.assert_close(model._session_state[-1][1], carried[0])
    assert not torch.equal(before[-1][1], model._session_state[-1][1])


@pytest.mark.parametrize("options, expected", [
    ({"loss": "cross-entropy"}, "linear"),
    ({"loss": "bpr-max"}, "elu-0.5"),
    ({"loss": "top1-max"}, "elu-0.5"),
    ({"loss": "cross-entropy", "final_act": "elu-1"}, "elu-1"),
])
def test_an_unset_final_activation_is_the_originals_for_the_loss(in_tmp_dir, options, expected):
    assert _model(**options).final_act == expected


def test_a_step_gives_one_sparse_gradient_row_per_distinct_item(in_tmp_dir):
    model = _model()
    model.train()
    model.sampler.sample = lambda: torch.tensor([9, 4, 9])
    batch = SessionParallelBatch(torch.tensor([3, 4]), torch.tensor([5, 3]), torch.ones(2, dtype=torch.bool))
    model.calculate_loss(batch).backward()
    for table in (model.item_embedding, model.item_bias):
        assert table.weight.grad.is_sparse and table.weight.grad._indices()[0].tolist() == [3, 4, 5, 9]


def test_gradients_reach_only_the_embedding_rows_a_step_touched(in_tmp_dir):
    model = _model(n_sample=0)
    model.train()
    batch = SessionParallelBatch(torch.tensor([3, 4]), torch.tensor([5, 6]), torch.ones(2, dtype=torch.bool))
    model.calculate_loss(batch).backward()
    grad = model.item_embedding.weight.grad
    assert grad.is_sparse
    assert set(grad.coalesce().indices()[0].tolist()) == {3, 4, 5, 6}


@pytest.mark.parametrize(
    "options, message",
    [
        ({"loss": "hinge"}, "loss='hinge' is not valid"),
        ({"sample_alpha": 1.5}, "sample_alpha"),
        ({"n_sample": -2}, "n_sample"),
        ({"final_act": "softplus"}, "final_act"),
        ({"layers": [0]}, "layers"),
        ({"embedding": 16}, "constrained_embedding"),
        ({"dropout_p_hidden": 1.0}, "dropout_p_hidden"),
        ({"logq": 1.0}, "logq"),
        ({"n_sample": 0, "train_batch_size": 1}, "train_batch_size"),
    ],
)
def test_bad_options_raise_a_plugin_error_naming_the_option(in_tmp_dir, options, message):
    with pytest.raises(PluginError, match=message):
        _model(**options)
