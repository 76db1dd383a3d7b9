import numpy as np
import pytest

from helpers import prepare
from recbole_gru4rec_plus import PluginError
from recbole_gru4rec_plus.data.dwell import dwell_copies, repeat_events


def test_copies_follow_the_dwell_and_the_last_event_of_a_session_is_kept_once():
    times = np.array([0, 250, 260, 1000, 0, 90])  # two sessions: 4 and 2 events
    starts = np.array([1, 0, 0, 0, 1, 0], dtype=bool)
    copies = dwell_copies(times, starts, threshold=100, max_copies=10)
    # dwells 250, 10, 740 -> 3, 1, 8 copies; last event once; 90 -> 1; last once
    assert copies.tolist() == [3, 1, 8, 1, 1, 1]


def test_copies_are_capped():
    copies = dwell_copies(np.array([0, 10_000, 10_001]), np.array([1, 0, 0], dtype=bool), 100, max_copies=4)
    assert copies.tolist() == [4, 1, 1]


def test_repeated_events_start_sessions_only_once():
    (items,), starts = repeat_events((np.array([7, 8, 9]),), np.array([1, 0, 1], dtype=bool), np.array([3, 2, 1]))
    assert items.tolist() == [7, 7, 7, 8, 8, 9]
    assert starts.tolist() == [1, 0, 0, 0, 0, 1]


@pytest.mark.parametrize("threshold, max_copies, option", [(0, 5, "dwell_threshold"), (60, 0, "dwell_max_copies")])
def test_bad_dwell_options_name_the_option(threshold, max_copies, option):
    with pytest.raises(PluginError, match=option):
        dwell_copies(np.array([0, 1]), np.array([1, 0], dtype=bool), threshold, max_copies)


def _expected_sliced_sessions(users, items, times, gap, threshold, max_copies):
    """Training sessions with dwell-time slicing, by a plain loop over the events (docs/algorithm.md §4, §6)."""
    sessions, current = [], []
    for k in range(len(items)):
        if k and (users[k] != users[k - 1] or times[k] - times[k - 1] > gap):
            sessions.append(current)
            current = []
        has_next = k + 1 < len(items) and users[k + 1] == users[k] and times[k + 1] - times[k] <= gap
        copies = min(int((times[k + 1] - times[k]) // threshold) + 1, max_copies) if has_next else 1
        current += [int(items[k])] * copies
    sessions.append(current)
    return [session for session in sessions if len(session) >= 2]


def test_sliced_training_sessions_repeat_each_event_by_its_dwell_and_leave_evaluation_untouched(in_tmp_dir):
    small = {"user_inter_num_interval": "[0,40)", "n_sample": 16, "session_gap": 7200}
    _, plain_train, plain_valid, plain_test, _ = prepare(**small)
    _, sliced_train, sliced_valid, sliced_test, _ = prepare(**small, dwell_threshold=60, dwell_max_copies=5)
    events = plain_train.dataset.inter_feat  # the training events, by user and time
    expected = _expected_sliced_sessions(events["user_id"].numpy(), events["item_id"].numpy(),
                                         events["timestamp"].numpy(), 7200, 60, 5)
    sessions = sliced_train.sessions
    assert [sessions.items[a:b].tolist() for a, b in zip(sessions.offsets[:-1], sessions.offsets[1:])] == expected
    assert sessions.n_targets > plain_train.sessions.n_targets
    for plain, sliced in ((plain_valid, sliced_valid), (plain_test, sliced_test)):
        for field in ("item_id", "item_id_list", "item_length"):
            assert plain.dataset.inter_feat[field].equal(sliced.dataset.inter_feat[field])
