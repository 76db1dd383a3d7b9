"""HRNN (docs/algorithm.md §5) against independent computations, its user-parallel batches, its
warm-up evaluation, a planted user-taste signal, and runs through the same pipeline as every model."""

import numpy as np
import pytest
import torch

from recbole_gru4rec_plus import PluginError
from recbole_gru4rec_plus.config import PluginConfig
from recbole_gru4rec_plus.data.session_parallel import SessionParallelBatch, SessionParallelDataLoader, TrainingSessions
from recbole_gru4rec_plus.data.synthetic import user_taste_sessions, write_atomic_inter
from recbole_gru4rec_plus.data.user_sessions import SESSION_START_LIST
from recbole_gru4rec_plus.quick_start import run, run_config

from helpers import prepare

SMALL = {"user_inter_num_interval": "[0,40)", "n_sample": 16, "train_batch_size": 2, "session_gap": 3600,
         "layers": [8], "user_layers": [6]}


def _hrnn(**options):
    return prepare("HRNN", **{**SMALL, **options})[-1]


def _gru_cell(layer, extra_gate_bias=None):
    """torch.nn.GRUCell with ``layer``'s weights; ``extra_gate_bias`` (2H) added to the input-side
    reset and update biases (a one-row user term of hrnn_mode 'all')."""
    cell = torch.nn.GRUCell(layer.input_size, layer.hidden_size)
    bias = layer.input_bias.detach().clone()
    if extra_gate_bias is not None:
        bias[: 2 * layer.hidden_size] += extra_gate_bias
    cell.weight_ih.data, cell.bias_ih.data = layer.input_weight.detach().clone(), bias
    cell.weight_hh.data, cell.bias_hh.data = layer.hidden_weight.detach().t().clone(), layer.hidden_bias.detach().clone()
    return cell


def _batch(inputs, targets, starts, user_starts):
    as_bool = lambda values: torch.tensor(values, dtype=torch.bool)
    return SessionParallelBatch(torch.tensor(inputs), torch.tensor(targets), as_bool(starts), None, as_bool(user_starts))


@pytest.mark.parametrize("mode", ["init", "all"])
def test_user_update_at_a_session_end_and_the_session_initialisation_by_hand(in_tmp_dir, mode):
    model = _hrnn(hrnn_mode=mode, user_to_output=True)
    model.eval()  # no dropout (none is configured either)
    # slot 0: user A, session (1, 2, 3) then (4, 5, ...); slot 1: user B's session (6, 7, 8), then user C (9, ...)
    model.calculate_loss(_batch([1, 6], [2, 7], [True, True], [True, True]))
    model.calculate_loss(_batch([2, 7], [3, 8], [False, False], [False, False]))
    model.calculate_loss(_batch([4, 9], [5, 10], [True, True], [False, True]))
    session_state, user_state = model._session_state

    E = model.item_embedding.weight.detach()
    session_cell, user_cell = _gru_cell(model.gru_layers[0]), _gru_cell(model.user_gru_layers[0])
    zero_h, zero_c = torch.zeros(1, 8), torch.zeros(1, 6)
    with torch.no_grad():
        last_of_a = session_cell(E[[2]], session_cell(E[[1]], zero_h))  # after the session's last input, 2
        c = user_cell(last_of_a, zero_c)
        initial = torch.tanh(c @ model.session_init.weight.t() + model.session_init.bias)
        cell = _gru_cell(model.gru_layers[0], (c @ model.user_gates.weight.t())[0]) if mode == "all" else session_cell
        expected_a = cell(E[[4]], initial)
        expected_c = session_cell(E[[9]], zero_h)  # a new user: both states start at zero
    torch.testing.assert_close(user_state[0], c[0])
    torch.testing.assert_close(user_state[1], zero_c[0])
    torch.testing.assert_close(session_state[0], expected_a[0])
    torch.testing.assert_close(session_state[1], expected_c[0])
    # user_to_output: every item's score gets + c · U[i]
    with torch.no_grad():
        scores = model._all_scores((session_state, user_state))
        expected = session_state @ E.t() + model.item_bias.weight.t() + user_state @ model.user_output.weight.t()
    torch.testing.assert_close(scores, expected)


def test_in_mode_init_the_user_state_does_not_enter_later_steps_of_a_session(in_tmp_dir):
    model = _hrnn(hrnn_mode="init")
    model.eval()
    model.calculate_loss(_batch([1, 6], [2, 7], [True, True], [True, True]))
    model.calculate_loss(_batch([4, 9], [5, 10], [True, False], [False, False]))  # slot 0: a second session
    before = [state.clone() for state in model._session_state]
    model.calculate_loss(_batch([5, 10], [11, 12], [False, False], [False, False]))
    with torch.no_grad():
        expected = _gru_cell(model.gru_layers[0])(model.item_embedding.weight[[5]], before[0][[0]])
    torch.testing.assert_close(model._session_state[0][0], expected[0])
    torch.testing.assert_close(model._session_state[1], before[1])  # the user state moves only at session starts


# ---- user-parallel batches ----------------------------------------------------------------------


def _user_sessions(rng, n_users):
    """Events of users with 1-4 sessions of 1-5 events (sessions of one event are dropped)."""
    items, starts, user_starts, times, users = [], [], [], [], []
    clock = 0.0
    for user in range(n_users):
        for session in range(rng.integers(1, 5)):
            for event in range(rng.integers(1, 6)):
                items.append(len(items) + 1)
                starts.append(event == 0)
                user_starts.append(event == 0 and session == 0)
                times.append(clock + rng.random())
                users.append(user)
            clock += 1
    return [np.asarray(a) for a in (items, starts, user_starts, times, users)]


@pytest.mark.parametrize("batch_size", [1, 3, 7])
def test_each_slot_walks_whole_users_sessions_in_order_resetting_exactly_at_user_starts(batch_size):
    rng = np.random.default_rng(batch_size)
    items, starts, user_starts, times, users = _user_sessions(rng, 40)
    sessions = TrainingSessions.from_events(items, starts, times, user_starts=user_starts)
    # independently: per user, the (input, target, session start) steps of its sessions of >= 2 events
    expected = {}
    session_of = np.cumsum(starts)
    for user in np.unique(users):
        steps = []
        for session in np.unique(session_of[users == user]):
            events = items[session_of == session]
            steps += [(int(a), int(b), k == 0) for k, (a, b) in enumerate(zip(events[:-1], events[1:]))]
        if steps:
            expected[int(user)] = steps
    config = {"train_batch_size": batch_size, "device": torch.device("cpu"), "seed": 1}
    loader = SessionParallelDataLoader(config, None, sessions, unit="user")
    walks = {slot: [] for slot in range(batch_size)}
    n_steps = 0
    for batch in loader:
        n_steps += 1
        slots = batch.slots.tolist() if batch.slots is not None else list(range(batch_size))
        for row, slot in enumerate(slots):
            walks[slot].append((int(batch.inputs[row]), int(batch.targets[row]), bool(batch.starts[row]),
                                bool(batch.user_starts[row])))
    assert n_steps == len(loader)
    seen = []
    for walk in walks.values():
        for step in walk:
            if step[3]:  # a user starts here: a new run of that user's steps
                seen.append([])
            seen[-1].append(step[:3])
    owner = {steps[0][0]: user for user, steps in expected.items()}
    assert sorted(owner[run[0][0]] for run in seen) == sorted(expected)  # each user once, from its first step
    for run_steps in seen:
        assert run_steps == expected[owner[run_steps[0][0]]]
    # users are dealt in order of their first session's start time: slot 0 starts the earliest one
    assert walks[0][0][0] == expected[min(expected)][0][0]


# ---- evaluation: the user's earlier sessions warm the user state up ------------------------------


def _taste_dataset(folder, sessions_per_user=6, session_length=3, **options):
    users, items, times = user_taste_sessions(30, sessions_per_user, session_length=session_length, seed=1)
    write_atomic_inter(str(folder), "tastes", users, items, times)
    config = {"data_path": str(folder), "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
              "session_gap": 3600, "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",
              "n_sample": 16, "layers": [8], "user_layers": [6], "train_batch_size": 4, **options}
    return (users, items, times), prepare("HRNN", "tastes", **config)


@pytest.mark.parametrize("max_length, first_entry", [(200, 0), (7, 12)])
def test_evaluation_rows_hold_the_users_earlier_whole_sessions_with_session_flags(in_tmp_dir, max_length, first_entry):
    (users, items, _), (config, train, valid, test, model) = _taste_dataset(in_tmp_dir, MAX_ITEM_LIST_LENGTH=max_length)
    rows = test.dataset.inter_feat
    dataset = test.dataset
    for row in range(len(rows)):
        user = int(dataset.id2token("user_id", rows["user_id"][row]))
        events = items[users == user]  # 18 events: the test target is the last one (index 17)
        length = int(rows["item_length"][row])
        history = dataset.id2token("item_id", rows["item_id_list"][row, :length]).astype(np.int64)
        assert history.tolist() == events[first_entry:17].tolist()
        flags = rows[SESSION_START_LIST][row, :length].tolist()
        assert flags == [(first_entry + k) % 3 == 0 for k in range(length)]  # sessions of 3 events


def test_a_current_session_longer_than_the_window_is_cut_like_gru4recplus(in_tmp_dir):
    (users, items, _), (_, _, _, test, _) = _taste_dataset(in_tmp_dir, sessions_per_user=2, session_length=10,
                                                          MAX_ITEM_LIST_LENGTH=4)
    rows = test.dataset.inter_feat
    assert rows["item_length"].tolist() == [4] * len(rows)
    assert rows[SESSION_START_LIST][:, :4].tolist() == [[True, False, False, False]] * len(rows)


def test_warm_up_evaluation_equals_stepping_the_same_events_through_training_batches(in_tmp_dir):
    (users, items, times), (config, train, valid, test, model) = _taste_dataset(in_tmp_dir, hrnn_mode="all",
                                                                               user_to_output=True)
    model.eval()
    rows = test.dataset.inter_feat
    interaction = {key: rows[key][:3] for key in ("item_id_list", "item_length", SESSION_START_LIST)}
    scores = model.full_sort_predict(interaction)
    for row in range(3):
        # the row's history and target as one user's sessions, stepped by the user-parallel loader
        length = int(rows["item_length"][row])
        seq = torch.cat((rows["item_id_list"][row, :length], rows["item_id"][row : row + 1])).numpy()
        flags = np.r_[rows[SESSION_START_LIST][row, :length].numpy(), False]
        sessions = TrainingSessions.from_events(seq, flags, user_starts=np.arange(len(seq)) == 0)
        loader = SessionParallelDataLoader({"train_batch_size": 1, "device": torch.device("cpu"), "seed": 1}, None,
                                           sessions, unit="user")
        model.reset_session_state()
        model.n_slots = 1
        for batch in loader:
            model.calculate_loss(batch)
        stepped = model._all_scores((model._session_state[0], model._session_state[1]))
        torch.testing.assert_close(scores[row], stepped[0])


# ---- a planted signal: users with a persistent taste --------------------------------------------


def _train_on_tastes(folder, model, planted=True):
    users, items, times = user_taste_sessions(300, 8, n_groups=20, group_size=10, n_openers=200, session_length=3,
                                              planted=planted, seed=7)
    last = np.r_[users[1:] != users[:-1], True]
    # each user's last session keeps its opener and first taste item: the test target (RecBole's leave-one-out)
    # is a session's first target; the validation target is that opener, which nothing predicts, so the
    # final model is tested (saved=False)
    keep = ~last
    write_atomic_inter(str(folder), "tastes", users[keep], items[keep], times[keep])
    config = {"data_path": str(folder), "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
              "session_gap": 3600, "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",
              "n_sample": 64, "epochs": 8, "train_batch_size": 32, "learning_rate": 0.1, "loss": "cross-entropy",
              "show_progress": False, "state": "WARNING"}
    return run(model, "tastes", None, config, saved=False)["test_result"]


def test_hrnn_recovers_a_users_taste_that_gru4recplus_cannot_see_on_first_targets(in_tmp_dir):
    hrnn = _train_on_tastes(in_tmp_dir, "HRNN")
    gru4rec = _train_on_tastes(in_tmp_dir, "GRU4RecPlus")
    # the opener says nothing of the taste: GRU4RecPlus is left with 20 of ~200 taste items
    assert gru4rec["recall@20"] < 0.25
    assert hrnn["recall@20"] > 0.6
    assert hrnn["recall@20"] > 3 * gru4rec["recall@20"]


# ---- the same pipeline as every model, and bad input --------------------------------------------


def test_hrnn_and_a_builtin_model_are_evaluated_on_the_same_targets_of_real_user_sessions(in_tmp_dir):
    import os
    import shutil

    from conftest import DATA

    os.makedirs("data/ml-latest-small")
    shutil.copy(os.path.join(DATA, "ml-latest-small", "ratings.csv"), "data/ml-latest-small/")
    targets = {}
    for model in ("HRNN", "GRU4Rec"):
        options = {"data_path": "data/", "session_gap": 3600, "epochs": 1, "show_progress": False, "state": "WARNING",
                   "threads": 1, "MAX_ITEM_LIST_LENGTH": 20}
        options.update({"n_sample": 64} if model == "HRNN" else {"hidden_size": 16, "embedding_size": 16})
        config = PluginConfig(model, "ml-latest-small", None, options)
        result = run_config(config, saved=False, per_target=20, console_log=False)
        assert 0 < result["test_result"]["recall@20"] < 1
        targets[model] = sorted(result["per_target"]["keys"])
    assert targets["HRNN"] == targets["GRU4Rec"]


@pytest.mark.parametrize("options, message", [
    ({}, "HRNN needs users with several sessions"),  # ml-100k without session_gap: one session per user
    ({"session_gap": 3600, "hrnn_mode": "both"}, "hrnn_mode"),
    ({"session_gap": 3600, "dropout_p_init": 1.5}, "dropout_p_init"),
    ({"session_gap": 3600, "user_layers": [0]}, "user_layers"),
])
def test_bad_input_is_one_clear_error(in_tmp_dir, options, message):
    with pytest.raises(PluginError, match=message):
        prepare("HRNN", **{**SMALL, "session_gap": None, **options})


def test_a_gru4recplus_only_key_is_a_warning_for_hrnn_not_silently_used(in_tmp_dir):
    config = PluginConfig("HRNN", "ml-100k", None, {"dropout_p_hidden": 0.3, "session_gap": 3600})
    assert config.unused_options == {"dropout_p_hidden": ["GRU4RecPlus"]}
