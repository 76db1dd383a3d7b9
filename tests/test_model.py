import pytest
import torch

from recbole_gru4rec_plus import PluginError
from recbole_gru4rec_plus.data.session_parallel import SessionParallelBatch
from recbole_gru4rec_plus.model.layers import gather_distinct_rows, parse_final_activation

from helpers import prepare

SMALL = {"user_inter_num_interval": "[0,40)", "n_sample": 16}
VARIANTS = [
    {},
    {"constrained_embedding": False, "embedding": 0},
    {"constrained_embedding": False, "embedding": 24},
    {"layers": [32, 16], "constrained_embedding": False, "embedding": 8},
]


def _model(**options):
    return prepare(**{**SMALL, **options})


def _feed(model, slot_sessions):
    """Feed equal-length sessions, one per slot, step by step through calculate_loss."""
    sessions = torch.tensor(slot_sessions)
    for position in range(sessions.shape[1] - 1):
        starts = torch.full((len(sessions),), position == 0)
        model.calculate_loss(SessionParallelBatch(sessions[:, position], sessions[:, position + 1], starts, None))
    return sessions


@pytest.mark.parametrize("options", VARIANTS)
def test_stepping_a_session_gives_the_state_and_scores_of_full_sort_predict(in_tmp_dir, options):
    config, train_data, _, test_data, model = _model(**options)
    model.eval()  # no dropout, as in prediction
    sessions = _feed(model, [[5, 9, 2, 7, 3, 1], [8, 8, 4, 6, 2, 10]])
    # calculate_loss has consumed items 0..4 of each session; predict from the same items
    history = sessions[:, :-1]
    interaction = {"item_id_list": history, "item_length": torch.tensor([5, 5])}
    final_state = model._encode(interaction["item_id_list"], interaction["item_length"])
    torch.testing.assert_close(model._session_state[-1], final_state)
    scores = model.full_sort_predict(interaction)
    expected = final_state @ model.item_embedding.weight.T + model.item_bias.weight.T
    torch.testing.assert_close(scores, expected)
    interaction["item_id"] = torch.tensor([3, 2])
    torch.testing.assert_close(model.predict(interaction), scores[[0, 1], [3, 2]])


def test_padding_after_the_history_does_not_change_the_prediction(in_tmp_dir):
    *_, model = _model()
    model.eval()
    short = {"item_id_list": torch.tensor([[4, 5, 0, 0]]), "item_length": torch.tensor([2])}
    padded = {"item_id_list": torch.tensor([[4, 5, 77, 99]]), "item_length": torch.tensor([2])}
    torch.testing.assert_close(model.full_sort_predict(short), model.full_sort_predict(padded))


def test_state_resets_only_in_slots_that_start_a_session(in_tmp_dir):
    *_, model = _model()
    model.eval()
    _feed(model, [[1, 2, 3], [4, 5, 6]])
    before = [state.clone() for state in model._session_state]
    batch = SessionParallelBatch(torch.tensor([7, 8]), torch.tensor([9, 10]), torch.tensor([True, False]), None)
    model.calculate_loss(batch)
    fresh = model._encode(torch.tensor([[7]]), torch.tensor([1]))
    torch.testing.assert_close(model._session_state[-1][0], fresh[0])
    carried = model._encode(torch.tensor([[4, 5, 8]]), torch.tensor([3]))
    torch.testing.assert_close(model._session_state[-1][1], carried[0])
    assert not torch.equal(before[-1][1], model._session_state[-1][1])


def test_idle_slots_are_neither_rows_nor_negatives(in_tmp_dir):
    *_, model = _model(n_sample=0, loss="bpr")
    model.eval()
    inputs, targets = torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8])
    starts = torch.ones(3, dtype=torch.bool)
    active = torch.tensor([True, False, True])
    masked = model.calculate_loss(SessionParallelBatch(inputs, targets, starts, active))
    model.reset_session_state()
    kept = active.nonzero().squeeze(1)
    alone = model.calculate_loss(SessionParallelBatch(inputs[kept], targets[kept], starts[kept], None))
    torch.testing.assert_close(masked, alone)


def test_gradients_reach_only_the_embedding_rows_a_step_touched(in_tmp_dir):
    *_, model = _model(n_sample=0)
    model.train()
    loss = model.calculate_loss(
        SessionParallelBatch(torch.tensor([3, 4]), torch.tensor([5, 6]), torch.ones(2, dtype=torch.bool), None)
    )
    loss.backward()
    grad = model.item_embedding.weight.grad
    assert grad.is_sparse
    assert set(grad.coalesce().indices()[0].tolist()) == {3, 4, 5, 6}


@pytest.mark.parametrize(
    "options, message",
    [
        ({"loss": "hinge"}, "unknown loss"),
        ({"sample_alpha": 1.5}, "sample_alpha"),
        ({"n_sample": -1}, "n_sample"),
        ({"final_act": "softplus"}, "final_act"),
        ({"layers": [0]}, "layers"),
        ({"embedding": 16}, "constrained_embedding"),
        ({"dropout_p_hidden": 1.0}, "dropout_p_hidden"),
        ({"logq": 1.0}, "logq"),
    ],
)
def test_bad_options_raise_a_plugin_error_naming_the_option(in_tmp_dir, options, message):
    with pytest.raises(PluginError, match=message):
        _model(**options)


# ---- the training step against REFERENCE §2–§3, column by column --------------------------------

def _reference_loss(model, batch, samples):
    """REFERENCE §2–§3 literally: the active slots' targets and the samples are the columns
    (duplicates and all), each row's own target its positive, every other column a negative."""
    active = batch.active if batch.active is not None else torch.ones(len(batch.targets), dtype=torch.bool)
    states = [torch.zeros(len(batch.inputs), size) for size in model.layer_sizes]  # every slot starts a session
    _, output = model._step(model._input_gates(batch.inputs), states)
    columns = torch.cat((batch.targets[active], samples))
    scores = output[active] @ model.item_embedding.weight[columns].T + model.item_bias.weight[columns].T
    if model.logq:
        scores = scores - model.logq * model.log_sample_prob[columns]
    scores = model.final_activation(scores)
    mask = ~torch.eye(*scores.shape, dtype=torch.bool)
    return model.loss_fct(scores.diagonal(), scores, mask)


@pytest.mark.parametrize(
    "options",
    [
        {"loss": "bpr-max", "final_act": "elu-0.5"},
        {"loss": "cross-entropy", "final_act": "linear"},
        {"loss": "cross-entropy", "final_act": "linear", "logq": 1.0},
        {"loss": "top1-max", "final_act": "tanh"},
        {"loss": "bpr", "final_act": "leaky-0.1", "constrained_embedding": False, "embedding": 24},
        {"loss": "top1", "final_act": "relu", "constrained_embedding": False, "embedding": 0},
    ],
)
@pytest.mark.parametrize("idle", [False, True], ids=["all-active", "idle-slots"])
def test_training_loss_and_gradients_equal_scoring_every_column(in_tmp_dir, options, idle):
    *_, model = _model(**options)
    model.train()
    # repeated targets, a target that is also an input, samples repeating each other and the targets
    inputs, targets = torch.tensor([3, 4, 5, 9, 3]), torch.tensor([6, 7, 6, 3, 8])
    samples = torch.tensor([6, 11, 11, 2, 7, 30, 11])
    active = torch.tensor([True, True, False, True, True]) if idle else None
    batch = SessionParallelBatch(inputs, targets, torch.ones(5, dtype=torch.bool), active)
    model.sampler.sample = lambda: samples

    model.reset_session_state()
    loss = model.calculate_loss(batch)
    loss.backward()
    grads = {name: p.grad.to_dense() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    expected = _reference_loss(model, batch, samples)
    expected.backward()

    torch.testing.assert_close(loss, expected)
    for name, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(grads[name], p.grad.to_dense(), msg=name)


def test_a_step_gives_one_sparse_gradient_row_per_distinct_item(in_tmp_dir):
    *_, model = _model()
    model.train()
    model.sampler.sample = lambda: torch.tensor([9, 4, 9])
    batch = SessionParallelBatch(torch.tensor([3, 4]), torch.tensor([5, 3]), torch.ones(2, dtype=torch.bool), None)
    model.calculate_loss(batch).backward()
    for table in (model.item_embedding, model.item_bias):
        assert table.weight.grad._indices()[0].tolist() == [3, 4, 5, 9]


def test_gather_distinct_rows_returns_the_rows_and_their_gradient():
    weight = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    rows, picks = torch.tensor([1, 4, 7]), torch.tensor([2, 0, 2])
    gathered, picked = gather_distinct_rows(weight, rows, picks)
    torch.testing.assert_close(gathered, weight[rows])
    torch.testing.assert_close(picked, weight[rows[picks]])
    coefficients = [torch.randn(t.shape, dtype=torch.float64) for t in (gathered, picked)]
    ((gathered * coefficients[0]).sum() + (picked * coefficients[1]).sum()).backward()
    sparse = weight.grad
    dense = weight.detach().clone().requires_grad_()
    ((dense[rows] * coefficients[0]).sum() + (dense[rows[picks]] * coefficients[1]).sum()).backward()
    assert sparse.is_sparse and sparse._indices()[0].tolist() == rows.tolist()
    torch.testing.assert_close(sparse.to_dense(), dense.grad)


# ---- final activations work in place ------------------------------------------------------------

OUT_OF_PLACE = {
    "linear": lambda x: x,
    "relu": torch.relu,
    "tanh": torch.tanh,
    "leaky-0.1": lambda x: torch.nn.functional.leaky_relu(x, 0.1),
    "leaky--0.2": lambda x: torch.nn.functional.leaky_relu(x, -0.2),
    "elu-0.5": lambda x: torch.nn.functional.elu(x, 0.5),
    "elu--0.5": lambda x: torch.nn.functional.elu(x, -0.5),
}


@pytest.mark.parametrize("name", OUT_OF_PLACE)
def test_final_activation_in_place_has_the_right_values_and_gradients(name):
    activation = parse_final_activation(name)
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    torch.testing.assert_close(activation(x * 1.0), OUT_OF_PLACE[name](x))
    assert torch.autograd.gradcheck(lambda x: activation(x * 1.0), (x,))
