import pytest
import torch

from recbole_gru4rec_plus import PluginError
from recbole_gru4rec_plus.data.session_parallel import SessionParallelBatch

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
