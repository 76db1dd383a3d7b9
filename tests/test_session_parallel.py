"""Session-parallel batches (docs/algorithm.md §1), checked slot by slot against a plain simulation."""

import numpy as np
import pytest
import torch

from recbole_gru4rec_plus.data.session_parallel import (
    SessionParallelDataLoader,
    TrainingSessions,
    parallel_schedule,
    session_parallel_schedule,
)
from recbole_gru4rec_plus.data.sessions import first_event_of_session, session_starts


def simulate_original(lengths, order, batch_size, min_active=1):
    """The original's iterator, written as a plain loop: per step, the event index of each slot
    still in the batch (slot -> index), sessions dealt in ``order``, lowest free slot first."""
    offsets = np.r_[0, np.cumsum(lengths)]
    queue = list(order)
    position = {}  # slot -> (session, event index)
    for slot in range(batch_size):
        if queue:
            session = queue.pop(0)
            position[slot] = (session, offsets[session])
    steps = []
    while len(position) >= min_active and position:
        steps.append({slot: index for slot, (_, index) in sorted(position.items())})
        for slot in sorted(position):
            session, index = position[slot]
            if index + 2 < offsets[session + 1]:
                position[slot] = (session, index + 1)
            elif queue:
                session = queue.pop(0)
                position[slot] = (session, offsets[session])
            else:
                del position[slot]  # no session left: the slot leaves the batch
    return steps


@pytest.mark.parametrize("batch_size", [1, 3, 8, 50])
@pytest.mark.parametrize("min_active", [1, 2])
def test_schedule_equals_a_slot_by_slot_simulation(batch_size, min_active):
    rng = np.random.default_rng(batch_size)
    lengths = rng.integers(2, 12, size=37)
    order = rng.permutation(len(lengths))
    schedule = session_parallel_schedule(lengths, order, batch_size, min_active)
    expected = simulate_original(lengths, order, batch_size, min_active)
    assert len(schedule) == len(expected)
    for row, step in zip(schedule, expected):
        assert {slot: int(index) for slot, index in enumerate(row) if index >= 0} == step


@pytest.mark.parametrize("chunk_steps", [1, 3, 7, 40])
def test_a_schedule_filled_in_chunks_equals_one_filled_at_once(chunk_steps):
    """The fill runs in chunks of units of about ``chunk_steps`` steps (1M in use: never more
    than one chunk on test data, so the boundaries are exercised here)."""
    rng = np.random.default_rng(chunk_steps)
    steps = rng.integers(1, 12, size=37)
    order = rng.permutation(len(steps))
    whole = parallel_schedule(steps, order, 5, min_active=2)
    assert np.array_equal(parallel_schedule(steps, order, 5, min_active=2, chunk_steps=chunk_steps), whole)


def test_every_event_with_a_successor_is_a_target_exactly_once_and_each_slot_walks_its_sessions():
    lengths = np.array([3, 2, 4, 2, 5, 2])
    offsets = np.r_[0, np.cumsum(lengths)]
    schedule = session_parallel_schedule(lengths, np.arange(6), batch_size=2)
    for slot in range(2):
        column = [int(i) for i in schedule[:, slot] if i >= 0]
        # consecutive events of a session, then the first event of another session
        for previous, current in zip(column, column[1:]):
            session = np.searchsorted(offsets, previous, side="right") - 1
            assert current == previous + 1 or (previous == offsets[session + 1] - 2 and current in offsets)
    inputs = np.sort(schedule[schedule >= 0])
    expected = np.concatenate([np.arange(offsets[s], offsets[s + 1] - 1) for s in range(len(lengths))])
    assert inputs.tolist() == expected.tolist()


def test_slots_take_the_next_session_when_done_and_leave_the_batch_at_the_end():
    lengths = np.array([3, 2, 4, 2])  # sessions of 2, 1, 3, 1 steps
    schedule = session_parallel_schedule(lengths, np.arange(4), batch_size=2)
    # session offsets 0, 3, 5, 9: slot 1 finishes s1 after one step and takes s2 at step 1,
    # slot 0 finishes s0 after two steps and takes s3 at step 2; then slot 0 has left the batch
    assert schedule.tolist() == [[0, 3], [1, 5], [9, 6], [-1, 7]]


def test_with_in_batch_negatives_only_the_epoch_ends_below_two_slots():
    lengths = np.array([3, 2, 4, 2])
    schedule = session_parallel_schedule(lengths, np.arange(4), batch_size=2, min_active=2)
    assert schedule.tolist() == [[0, 3], [1, 5], [9, 6]]  # the last step would have one row


def test_sessions_are_dealt_in_start_time_order_by_default():
    sessions = TrainingSessions.from_events([1, 2, 3, 4, 5, 6], np.array([1, 0, 1, 0, 1, 0], dtype=bool),
                                            times=[30.0, 31, 10, 11, 20, 21])
    assert sessions.start_times.tolist() == [30.0, 10.0, 20.0]
    assert sessions.time_order().tolist() == [1, 2, 0]
    batches = list(_loader(sessions, batch_size=1))
    assert [int(b.inputs) for b in batches] == [3, 5, 1]


def test_training_sessions_drop_single_event_sessions():
    starts = np.array([1, 0, 0, 1, 1, 0], dtype=bool)
    sessions = TrainingSessions.from_events([5, 6, 7, 8, 9, 10], starts, times=[0, 1, 2, 3, 4, 5])
    assert sessions.items.tolist() == [5, 6, 7, 9, 10]
    assert sessions.offsets.tolist() == [0, 3, 5]
    assert sessions.start_times.tolist() == [0, 4]
    assert sessions.n_targets == 3


def _loader(sessions, batch_size, shuffle=False, min_active=1):
    config = {"train_batch_size": batch_size, "device": torch.device("cpu"), "seed": 1}
    return SessionParallelDataLoader(config, None, sessions, shuffle=shuffle, min_active=min_active)


def _sessions(items, starts):
    return TrainingSessions.from_events(items, np.asarray(starts, dtype=bool))


def test_loader_steps_give_each_slot_its_sessions_inputs_targets_and_starts_in_order():
    items = np.array([11, 12, 13, 21, 22, 31, 32, 33, 34])
    steps = list(_loader(_sessions(items, [1, 0, 0, 1, 0, 1, 0, 0, 0]), batch_size=2))
    walks = {0: [], 1: []}
    for step in steps:
        slots = step.slots.tolist() if step.slots is not None else [0, 1]
        for row, slot in enumerate(slots):
            walks[slot].append((int(step.inputs[row]), int(step.targets[row]), bool(step.starts[row])))
    # slot 1 finishes its one-step session first and takes the third session at the next step
    assert walks[0] == [(11, 12, True), (12, 13, False)]
    assert walks[1] == [(21, 22, True), (31, 32, True), (32, 33, False), (33, 34, False)]


def test_loader_rows_are_only_the_slots_left_at_the_end_of_the_epoch():
    steps = list(_loader(_sessions(np.arange(1, 9), [1, 0, 0, 0, 0, 0, 1, 0]), batch_size=2))  # 6 and 2 events
    assert [s.slots is None for s in steps] == [True, False, False, False, False]
    assert all(s.slots.tolist() == [0] and len(s.inputs) == 1 for s in steps[1:])


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("min_active", [1, 2])
def test_len_of_the_loader_is_the_number_of_steps_it_yields(shuffle, min_active):
    rng = np.random.default_rng(0)
    starts = rng.random(500) < 0.2
    starts[0] = True
    loader = _loader(_sessions(np.arange(1, 501), starts), batch_size=7, shuffle=shuffle, min_active=min_active)
    for _ in range(3):
        expected = len(loader)
        assert sum(1 for _ in loader) == expected


def test_loader_reshuffles_sessions_every_epoch_when_asked_and_is_reproducible():
    starts = np.zeros(200, dtype=bool)
    starts[::4] = True
    sessions = _sessions(np.arange(1, 201), starts)
    first = [[s.inputs.tolist() for s in _loader(sessions, 3, shuffle=True)] for _ in range(2)]
    loader = _loader(sessions, 3, shuffle=True)
    epochs = [[s.inputs.tolist() for s in loader] for _ in range(2)]
    assert epochs[0] != epochs[1]
    assert first[0] == epochs[0]
    fixed = _loader(sessions, 3)
    assert [s.inputs.tolist() for s in fixed] == [s.inputs.tolist() for s in fixed]


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
