import numpy as np
import pytest
import torch

from recbole_gru4rec_plus.data.session_parallel import (
    SessionParallelDataLoader,
    TrainingSessions,
    session_parallel_schedule,
)
from recbole_gru4rec_plus.data.sessions import first_event_of_session, session_starts


def test_training_sessions_drop_single_event_sessions():
    starts = np.array([1, 0, 0, 1, 1, 0], dtype=bool)
    sessions = TrainingSessions.from_events([5, 6, 7, 8, 9, 10], starts)
    assert sessions.items.tolist() == [5, 6, 7, 9, 10]
    assert sessions.offsets.tolist() == [0, 3, 5]
    assert sessions.n_targets == 3


@pytest.mark.parametrize("batch_size", [1, 3, 8, 50])
def test_every_event_with_a_successor_is_a_target_exactly_once(batch_size):
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 12, size=37)
    order = rng.permutation(len(lengths))
    schedule = session_parallel_schedule(lengths, order, batch_size)
    offsets = np.r_[0, np.cumsum(lengths)]
    inputs = np.sort(schedule[schedule >= 0])
    expected = np.concatenate([np.arange(offsets[s], offsets[s + 1] - 1) for s in range(len(lengths))])
    assert inputs.tolist() == expected.tolist()


def test_slots_walk_sessions_in_order_and_take_the_next_session_when_done():
    lengths = np.array([3, 2, 4, 2])  # sessions of 2, 1, 3, 1 steps
    schedule = session_parallel_schedule(lengths, np.arange(4), batch_size=2)
    # session offsets 0, 3, 5, 9: slot 1 finishes s1 after one step and takes s2 at step 1,
    # slot 0 finishes s0 after two steps and takes s3 at step 2; then slot 0 idles
    assert schedule.tolist() == [[0, 3], [1, 5], [9, 6], [-1, 7]]


def test_session_order_follows_the_given_permutation():
    lengths = np.array([2, 2, 2])
    schedule = session_parallel_schedule(lengths, np.array([2, 0, 1]), batch_size=1)
    assert schedule[:, 0].tolist() == [4, 0, 2]


def _loader(items, starts, batch_size, shuffle=False):
    config = {"train_batch_size": batch_size, "device": torch.device("cpu"), "seed": 1}
    return SessionParallelDataLoader(config, None, TrainingSessions.from_events(items, starts), shuffle=shuffle)


def test_loader_steps_give_inputs_targets_and_resets_exactly_at_session_starts():
    items = np.array([11, 12, 13, 21, 22, 31, 32, 33, 34])
    starts = np.array([1, 0, 0, 1, 0, 1, 0, 0, 0], dtype=bool)
    steps = list(_loader(items, starts, batch_size=2))
    pairs, resets = [], []
    for step in steps:
        rows = step.active if step.active is not None else torch.ones(2, dtype=torch.bool)
        pairs += list(zip(step.inputs[rows].tolist(), step.targets[rows].tolist()))
        resets += [(i, s) for i, s in zip(step.inputs[rows].tolist(), step.starts[rows].tolist())]
    assert sorted(pairs) == [(11, 12), (12, 13), (21, 22), (31, 32), (32, 33), (33, 34)]
    assert sorted(i for i, s in resets if s) == [11, 21, 31]


def test_loader_marks_idle_slots_only_at_the_end_of_the_epoch():
    items = np.arange(1, 9)
    starts = np.array([1, 0, 0, 0, 0, 0, 1, 0], dtype=bool)  # sessions of 6 and 2 events
    steps = list(_loader(items, starts, batch_size=2))
    assert [s.active is None for s in steps] == [True, False, False, False, False]
    assert steps[1].active.tolist() == [True, False]


def test_loader_reshuffles_sessions_every_epoch_and_is_reproducible():
    items = np.arange(1, 201)
    starts = np.zeros(200, dtype=bool)
    starts[::4] = True
    first = [[s.inputs.tolist() for s in _loader(items, starts, 3, shuffle=True)] for _ in range(2)]
    loader = _loader(items, starts, 3, shuffle=True)
    epochs = [[s.inputs.tolist() for s in loader] for _ in range(2)]
    assert epochs[0] != epochs[1]
    assert first[0] == epochs[0]


def test_session_starts_at_user_changes_gaps_and_session_ids():
    users = np.array([1, 1, 1, 1, 2, 2])
    times = np.array([0, 10, 200, 205, 206, 207])
    assert session_starts(users).tolist() == [1, 0, 0, 0, 1, 0]
    assert session_starts(users, times, session_gap=100).tolist() == [1, 0, 1, 0, 1, 0]
    assert session_starts(users, times, session_gap=189).tolist() == [1, 0, 1, 0, 1, 0]
    assert session_starts(users, times, session_gap=190).tolist() == [1, 0, 0, 0, 1, 0]
    sessions = np.array([7, 7, 8, 8, 9, 9])
    assert session_starts(users, session_ids=sessions).tolist() == [1, 0, 1, 0, 1, 0]


def test_first_event_of_session():
    starts = np.array([1, 0, 0, 1, 0, 1], dtype=bool)
    assert first_event_of_session(starts).tolist() == [0, 0, 0, 3, 3, 5]
