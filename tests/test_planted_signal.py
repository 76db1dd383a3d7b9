"""GRU4RecPlus recovers signals planted in synthetic sessions."""

import numpy as np
import pytest

from recbole_gru4rec_plus.data.synthetic import write_atomic_inter, zipf_sessions
from recbole_gru4rec_plus.quick_start import run


def _train(tmp_path, sessions, **options):
    session_ids, items, times = sessions
    write_atomic_inter(str(tmp_path), "planted", session_ids, items, times)
    config = {
        "data_path": str(tmp_path),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "show_progress": False,
        "state": "WARNING",
        **options,
    }
    return run("GRU4RecPlus", "planted", None, config, saved=False)["test_result"]


def _popularity_recall_at_20(session_ids, items):
    """Recall@20 of recommending the 20 most frequent training items, on each session's last event."""
    last = np.r_[session_ids[1:] != session_ids[:-1], True]
    held_out = last | np.r_[last[1:], False]  # the valid and test events of each session
    top20 = np.argsort(-np.bincount(items[~held_out]))[:20]
    return np.isin(items[last], top20).mean()


def test_item_to_item_transitions_are_learned_far_above_popularity(in_tmp_dir):
    sessions = zipf_sessions(30_000, 3_000, 1_000, transition_strength=0.9, seed=3)
    result = _train(in_tmp_dir, sessions, n_sample=512, epochs=3)
    popularity = _popularity_recall_at_20(sessions[0], sessions[1])
    assert popularity < 0.3
    assert result["recall@20"] > 0.8
    assert result["recall@20"] > 3 * popularity


@pytest.mark.parametrize("max_loss, plain_loss", [("bpr-max", "bpr"), ("top1-max", "top1")])
def test_max_losses_beat_their_plain_versions_with_many_negatives(in_tmp_dir, max_loss, plain_loss):
    sessions = zipf_sessions(40_000, 4_000, 5_000, transition_strength=0.6, seed=3)
    options = {"n_sample": 2048, "epochs": 1}
    with_max = _train(in_tmp_dir, sessions, loss=max_loss, **options)
    plain = _train(in_tmp_dir, sessions, loss=plain_loss, **options)
    assert with_max["mrr@20"] > 1.3 * plain["mrr@20"]


def _train_session_protocol(folder, name, sessions, **options):
    """Import arrays by the GRU4Rec session protocol (whole sessions in train or test), train, test."""
    import pandas as pd

    from recbole_gru4rec_plus.data.session_import import apply_session_protocol, write_benchmark_files

    session_ids, items, times = sessions
    events = pd.DataFrame({"session_id": session_ids, "item_id": items.astype(str), "timestamp": times})
    days = 0.1 * len(np.unique(session_ids))  # one session a day: the last 10% are test, as many validation
    write_benchmark_files(apply_session_protocol(events, days, days), str(folder), name)
    config = {"show_progress": False, "state": "WARNING", "eval_step": 100, **options}
    return run("GRU4RecPlus", name, [str(folder / name / f"{name}.yaml")], config, saved=False)["test_result"]


def test_dwell_time_slicing_uses_the_dwell_signal_not_just_more_events(in_tmp_dir):
    """The same sessions, the same number of long dwells: on the key that decides the target
    (planted) or on a distractor (control). Slicing must do clearly better when the copies fall
    where the dwell signal is; slicing that ignored dwell, or copied the wrong event, would not.
    (Without slicing both data sets give the same model; bench/bench_sessions.py reports it.)"""
    from recbole_gru4rec_plus.data.synthetic import dwell_key_sessions

    options = {"n_sample": 256, "epochs": 4, "dwell_threshold": 60, "dwell_max_copies": 2}
    planted = _train_session_protocol(in_tmp_dir, "planted", dwell_key_sessions(3_000, planted=True, seed=1), **options)
    control = _train_session_protocol(in_tmp_dir, "control", dwell_key_sessions(3_000, planted=False, seed=1), **options)
    assert planted["mrr@20"] > 2 * control["mrr@20"]
