"""The session-aware protocol (docs/algorithm.md §8, HRNN's): user-session logs in, benchmark files out,
and every model evaluated on the same targets, each seeing what it can use."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from recbole_gru4rec_plus import PluginError
from recbole_gru4rec_plus.config import PluginConfig
from recbole_gru4rec_plus.data.dataset import SESSION_START_LIST
from recbole_gru4rec_plus.data import text_rows
from recbole_gru4rec_plus.data.session_aware import (
    USER_SESSION_LAYOUT,
    _sort,
    apply_session_aware_protocol,
    read_user_sessions_tsv,
    user_prefix_rows,
)
from recbole_gru4rec_plus.data.session_import import SPLITS, write_benchmark_files
from recbole_gru4rec_plus.quick_start import run_config

from conftest import DATA, ROOT
from helpers import prepare

IMPORT = os.path.join(ROOT, "run", "import_sessions.py")


def _log(rows):
    return pd.DataFrame(rows, columns=["user_id", "session_id", "item_id", "timestamp"]).astype(
        {"user_id": str, "session_id": str, "item_id": str, "timestamp": float})


def _toy():
    """Users a (4 sessions) and b (3), c (2: too few); items x, y, z frequent, r rare."""
    rows = []
    for user, n_sessions in (("a", 4), ("b", 3), ("c", 2)):
        for s in range(n_sessions):
            start = 1000.0 * s + (0 if user == "a" else 10_000 * (user == "b") + 20_000 * (user == "c"))
            items = ["x", "y", "z"] if s % 2 == 0 else ["y", "x"]
            if user == "a" and s == 3:
                items = ["x", "r", "y"]  # r: seen once, dropped; the session keeps x, y
            rows += [(user, f"{user}:{s}", item, start + k) for k, item in enumerate(items)]
    return _log(rows)


def test_each_users_last_session_is_test_the_one_before_validation_after_the_filters():
    splits = apply_session_aware_protocol(_toy(), min_item_support=2, min_session_length=2, min_user_sessions=3)
    assert sorted(splits["test"]["session_id"].unique()) == ["a:3", "b:2"]
    assert sorted(splits["valid"]["session_id"].unique()) == ["a:2", "b:1"]
    assert sorted(splits["train"]["session_id"].unique()) == ["a:0", "a:1", "b:0"]
    assert "c" not in set(splits["train"]["user_id"])  # two sessions: no history for the protocol
    assert splits["test"][splits["test"]["session_id"] == "a:3"]["item_id"].tolist() == ["x", "y"]  # r dropped


def test_test_items_unseen_in_training_are_dropped_then_short_sessions():
    log = _toy()
    log.loc[(log["session_id"] == "b:2") & (log["item_id"] != "x"), "item_id"] = "new"
    splits = apply_session_aware_protocol(log, min_item_support=1, min_session_length=2, min_user_sessions=3)
    assert "b:2" not in set(splits["test"]["session_id"])  # 'new' is only in b's test session: one event left


def test_fewer_than_three_sessions_per_user_is_refused():
    with pytest.raises(PluginError, match="min-user-sessions must be at least 3"):
        apply_session_aware_protocol(_toy(), min_user_sessions=2)


def test_rows_hold_the_users_whole_earlier_history_with_session_flags(tmp_path):
    splits = apply_session_aware_protocol(_toy(), min_item_support=2, min_session_length=2, min_user_sessions=3)
    write_benchmark_files(splits, str(tmp_path), "toy", max_history=4, layout=USER_SESSION_LAYOUT)
    test = pd.read_csv(tmp_path / "toy" / "toy.test.inter", sep="\t", dtype=str)
    row = test[test["user_id:token"] == "a"].iloc[0]  # the target y of a's last session (x, y)
    # a's events before it: a:0 x y z, a:1 y x, a:2 x y z, a:3 x; the last 4 of them
    assert row["item_id_list:token_seq"].split() == ["x", "y", "z", "x"]
    assert row["session_start_list:float_seq"].split() == ["1", "0", "0", "1"]
    assert row["item_id:token"] == "y"
    valid = pd.read_csv(tmp_path / "toy" / "toy.valid.inter", sep="\t", dtype=str)
    assert len(valid[valid["user_id:token"] == "a"]) == 2  # a:2 has two targets


def reference_user_prefix_rows(splits, max_history=50):
    """The session-aware rows as the importer wrote them before its writer was vectorised: one
    Python loop per event (the oracle the array version must equal byte for byte)."""
    frames = [splits[split].assign(_split=k) for k, split in enumerate(SPLITS)]
    events = _sort(pd.concat(frames, ignore_index=True))
    users, sessions = events["user_id"].to_numpy(), events["session_id"].to_numpy()
    items, times, split_of = events["item_id"].astype(str).to_numpy(), events["timestamp"].to_numpy(), events["_split"].to_numpy()
    starts = np.r_[True, sessions[1:] != sessions[:-1]]
    user_first, lines = 0, {split: [] for split in SPLITS}
    for i in range(len(events)):
        if i and users[i] != users[i - 1]:
            user_first = i
        if starts[i]:
            continue
        first = max(user_first, i - max_history)
        history = " ".join(items[first:i])
        history_times = " ".join(repr(float(t)) for t in times[first:i])
        flags = " ".join("1" if s else "0" for s in starts[first:i])
        lines[SPLITS[split_of[i]]].append(
            f"{users[i]}\t{sessions[i]}\t{history}\t{items[i]}\t{float(times[i])!r}\t{history_times}\t{flags}\n")
    return lines


def test_vectorised_rows_equal_the_per_event_loop_on_movielens_sessions(tmp_path, monkeypatch):
    ratings = pd.read_csv(os.path.join(DATA, "ml-latest-small", "ratings.csv"))
    log = tmp_path / "log.tsv"
    ratings.rename(columns={"userId": "UserId", "movieId": "ItemId", "timestamp": "Time"})[
        ["UserId", "ItemId", "Time"]].to_csv(log, sep="\t", index=False)
    splits = apply_session_aware_protocol(read_user_sessions_tsv(str(log), 3600.0))
    monkeypatch.setattr(text_rows, "CHUNK_SPAN", 5000)  # rows of the small splits span many chunks
    monkeypatch.setattr(text_rows, "CHUNK_BYTES", 1 << 16)
    rows = user_prefix_rows(splits, max_history=20)
    expected = reference_user_prefix_rows(splits, max_history=20)
    for split in SPLITS:
        assert b"".join(rows[split]).decode().splitlines(keepends=True) == expected[split]


def test_sessions_come_from_the_gap_when_the_log_has_no_session_id(tmp_path):
    path = tmp_path / "log.tsv"
    path.write_text("UserId\tItemId\tTime\nu\t1\t0\nu\t2\t60\nu\t3\t5000\nv\t1\t10\n")
    events = read_user_sessions_tsv(str(path), session_gap=1800)
    assert events.groupby("user_id")["session_id"].nunique().to_dict() == {"u": 2, "v": 1}
    path.write_text("User\tItemId\tTime\nu\t1\t0\n")
    with pytest.raises(PluginError, match="lacks the column"):
        read_user_sessions_tsv(str(path))


def _import(tmp_path, *extra):
    log = pd.read_csv(os.path.join(DATA, "ml-latest-small", "ratings.csv"))
    log = log[log["userId"] <= 250]  # the first 250 users: a test-sized share of the real log
    path = tmp_path / "users.tsv"
    log.rename(columns={"userId": "UserId", "movieId": "ItemId", "timestamp": "Time"})[["UserId", "ItemId", "Time"]].to_csv(
        path, sep="\t", index=False)
    return subprocess.run([sys.executable, IMPORT, "--input", str(path), "--format", "user-sessions", "--session-gap",
                           "3600", "--name", "mlus", "--data-path", str(tmp_path / "data"), *extra],
                          capture_output=True, text=True, timeout=300)


def test_the_wrong_protocol_for_a_format_is_one_error_line(tmp_path):
    result = _import(tmp_path, "--protocol", "session")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--protocol session does not apply to --format user-sessions" in result.stderr


def test_every_model_is_evaluated_on_the_same_targets_each_seeing_what_it_can_use(in_tmp_dir):
    result = _import(in_tmp_dir, "--max-history", "20")
    assert result.returncode == 0, result.stderr
    assert "--model=HRNN" in result.stdout
    config_file = str(in_tmp_dir / "data" / "mlus" / "mlus.yaml")
    options = {"epochs": 1, "show_progress": False, "state": "WARNING", "threads": 1}
    targets, histories = {}, {}
    for model, own in (("HRNN", {"n_sample": 64}), ("GRU4RecPlus", {"n_sample": 64}),
                       ("GRU4Rec", {"hidden_size": 16, "embedding_size": 16})):
        config = PluginConfig(model, "mlus", [config_file], {**options, **own})
        result = run_config(config, saved=False, per_target=20, console_log=False)
        targets[model] = sorted(result["per_target"]["keys"])
    assert targets["HRNN"] == targets["GRU4RecPlus"] == targets["GRU4Rec"]
    # what each reads: GRU4RecPlus the current session only, HRNN the user's earlier sessions too
    for model in ("HRNN", "GRU4RecPlus"):
        _, _, _, test, _ = prepare(model, "mlus", [config_file], n_sample=64)
        histories[model] = test.dataset.inter_feat
    hrnn, gru = histories["HRNN"], histories["GRU4RecPlus"]
    assert (hrnn["item_length"] >= gru["item_length"]).all() and (hrnn["item_length"] > gru["item_length"]).any()
    first_in_session = gru["item_length"] == 1  # a session's first target: GRU4RecPlus sees one item
    assert first_in_session.any()
    assert (hrnn[SESSION_START_LIST][:, 0]).all()
    n_sessions_seen = hrnn[SESSION_START_LIST].sum(1)
    # HRNN: earlier sessions, then the current one (only the current one where an earlier session is cut by the
    # file's history length: a session is read whole or not at all)
    assert (n_sessions_seen[first_in_session] >= 2).float().mean() > 0.3
    # the current session is the tail of HRNN's history: GRU4RecPlus's history exactly
    row = int(np.flatnonzero(~first_in_session.numpy())[0])
    n_hrnn, n_gru = int(hrnn["item_length"][row]), int(gru["item_length"][row])
    assert hrnn["item_id_list"][row, n_hrnn - n_gru : n_hrnn].tolist() == gru["item_id_list"][row, :n_gru].tolist()


def test_hrnn_on_session_protocol_files_says_it_needs_users(in_tmp_dir):
    log = in_tmp_dir / "sessions.tsv"
    rows = [(s, 1 + (k + s) % 5, 86400.0 * s + k) for s in range(60) for k in range(3)]
    log.write_text("SessionId\tItemId\tTime\n" + "".join(f"{s}\t{i}\t{t}\n" for s, i, t in rows))
    result = subprocess.run([sys.executable, IMPORT, "--input", str(log), "--name", "sess", "--data-path", "data",
                             "--test-days", "5", "--min-item-support", "1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with pytest.raises(PluginError, match="HRNN needs users with several sessions"):
        prepare("HRNN", "sess", ["data/sess/sess.yaml"], n_sample=4)
