"""The session importer: readers, the GRU4Rec papers' protocol, and RecBole benchmark files."""

import ast
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from recbole_gru4rec_plus.data import session_import as si
from recbole_gru4rec_plus.data import text_rows
from recbole_gru4rec_plus.errors import PluginError

from conftest import DATA, ROOT

DIGINETICA = os.path.join(DATA, "diginetica-sample", "train-item-views.csv")
SCRIPT = os.path.join(ROOT, "run", "import_sessions.py")
DAY = 86400.0


def frame(rows):
    """A protocol frame from (session, item, time) tuples."""
    return pd.DataFrame(rows, columns=si.COLUMNS).astype({"item_id": str, "timestamp": np.float64})


def sessions_of(events):
    return {s: list(g["item_id"]) for s, g in si.sort_events(events).groupby("session_id")}


def text_lines(chunks):
    """The lines of a writer's byte chunks."""
    return b"".join(chunks).decode("utf-8").splitlines(keepends=True)


def reference_prefix_rows(frame, max_history=50):
    """The importer's rows as it wrote them before its writer was vectorised: one Python loop per
    target (kept here as the oracle the array version must equal byte for byte)."""
    frame = si._ordered_sessions(frame)
    sessions = frame["session_id"].astype(str).to_numpy()
    items = frame["item_id"].astype(str).to_numpy()
    times = frame["timestamp"].to_numpy()
    lines, start = [], 0
    for i in range(1, len(frame) + 1):
        if i < len(frame) and sessions[i] == sessions[start]:
            continue
        for j in range(start + 1, i):
            first = max(start, j - max_history)
            history = " ".join(items[first:j])
            history_times = " ".join(repr(float(t)) for t in times[first:j])
            lines.append(f"{sessions[j]}\t{history}\t{items[j]}\t{float(times[j])!r}\t{history_times}\n")
        start = i
    return lines


def load_cli():
    spec = importlib.util.spec_from_file_location("import_sessions", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_tsv(path, rows, header="SessionId\tItemId\tTime"):
    path.write_text(header + "\n" + "".join("\t".join(map(str, row)) + "\n" for row in rows))
    return str(path)


@pytest.fixture(scope="module")
def diginetica():
    return si.read_diginetica(DIGINETICA)


@pytest.fixture(scope="module")
def digi_splits(diginetica):
    return si.apply_session_protocol(diginetica, test_days=1, valid_days=1)


# --------------------------------------------------------------------------- readers


def test_diginetica_reader_gives_seconds_from_day_plus_milliseconds(diginetica):
    assert list(diginetica.columns) == si.COLUMNS and len(diginetica) == 12391
    assert diginetica["session_id"].nunique() == 2986 and diginetica["item_id"].nunique() == 7139
    assert diginetica["timestamp"].dtype == np.float64
    first = diginetica.iloc[0]  # 1;NA;81766;526309;2016-05-09
    assert (first["session_id"], first["item_id"]) == (1, "81766")
    assert first["timestamp"] == pd.Timestamp("2016-05-09").timestamp() + 526.309


def test_gru4rec_reader_keeps_tokens_and_float_times(tmp_path):
    path = write_tsv(tmp_path / "a.tsv", [(1, "007", 10.5), (1, "8", 11.25), (2, "007", 3)])
    events = si.read_gru4rec_tsv(path)
    assert list(events["item_id"]) == ["007", "8", "007"]
    assert events["session_id"].dtype == np.int64 and list(events["timestamp"]) == [10.5, 11.25, 3.0]


@pytest.mark.parametrize("content, message", [
    ("SessionId\tItem\tTime\n1\t2\t3\n", "lacks the column(s) ItemId"),
    ("SessionId\tItemId\tTime\n1\t2\tnoon\n", "Time 'noon' on data line 1 is not a number"),
    ("SessionId\tItemId\tTime\n", "no events"),
    ("", "cannot read"),
])
def test_gru4rec_reader_rejects_bad_files(tmp_path, content, message):
    (tmp_path / "bad.tsv").write_text(content)
    with pytest.raises(PluginError, match=message.replace("(", r"\(").replace(")", r"\)")):
        si.read_gru4rec_tsv(str(tmp_path / "bad.tsv"))


# --------------------------------------------------------------------------- protocol steps


def test_iterative_filter_reaches_a_fixed_point():
    # x is rare -> s1 becomes too short -> y becomes rare -> s2 becomes too short; s3, s4 survive
    events = frame([("s1", "x", 1), ("s1", "y", 2), ("s2", "y", 3), ("s2", "z", 4),
                    ("s3", "z", 5), ("s3", "w", 6), ("s4", "z", 7), ("s4", "w", 8)])
    kept = si.filter_support(events, min_item_support=2, min_session_length=2)
    assert sessions_of(kept) == {"s3": ["z", "w"], "s4": ["z", "w"]}
    assert si.filter_support(kept, 2, 2).equals(kept)


def test_collapse_repeats_only_inside_a_session():
    events = frame([(1, "a", 1), (1, "a", 2), (1, "b", 3), (1, "a", 4), (1, "b", 5), (1, "b", 6),
                    (2, "b", 7), (2, "c", 8)])
    assert sessions_of(si.collapse_repeats(events)) == {1: ["a", "b", "a", "b"], 2: ["b", "c"]}


def test_events_are_ordered_by_time_inside_a_session():
    events = frame([(1, "b", 20), (1, "a", 10), (1, "c", 30)])
    assert sessions_of(events) == {1: ["a", "b", "c"]}


def test_time_split_boundary_is_the_session_start():
    cutoff = 10 * DAY - 2 * DAY
    events = frame([("old", "a", cutoff - 1), ("old", "b", 10 * DAY),  # starts 1 s early, ends last
                    ("edge", "a", cutoff), ("edge", "b", cutoff + 5)])  # starts exactly at the cutoff
    train, test = si.split_by_time(events, days=2)
    assert set(train["session_id"]) == {"old"} and set(test["session_id"]) == {"edge"}


def test_unseen_test_items_are_dropped_then_short_sessions():
    events = frame([(1, "a", 0), (1, "b", 10), (2, "b", 20), (2, "a", 30),
                    (3, "a", 5 * DAY), (3, "new", 5 * DAY + 1), (3, "b", 5 * DAY + 2),  # loses 'new'
                    (4, "new", 5 * DAY + 3), (4, "a", 5 * DAY + 4)])  # left with one event: dropped
    splits = si.apply_session_protocol(events, test_days=1, valid_days=0, min_item_support=1)
    assert sessions_of(splits["test"]) == {3: ["a", "b"]}
    assert splits["valid"].equals(splits["test"])  # valid_days 0: the test set validates
    assert sessions_of(splits["train"]) == {1: ["a", "b"], 2: ["b", "a"]}


def test_prefix_rows_hold_the_recent_history_oldest_first():
    events = frame([(7, "a", 3), (7, "b", 4), (7, "c", 5), (5, "x", 1), (5, "y", 2)])
    rows = text_lines(si.prefix_rows(events, max_history=2))
    # sessions by start time; columns: session, history, target, target time, history times
    assert rows == ["5\tx\ty\t2.0\t1.0\n", "7\ta\tb\t4.0\t3.0\n", "7\ta b\tc\t5.0\t3.0 4.0\n"]
    last = text_lines(si.prefix_rows(frame([(1, "a", 1), (1, "b", 2), (1, "c", 3), (1, "d", 4)]), 2))[-1]
    assert last == "1\tb c\td\t4.0\t2.0 3.0\n"


def test_rows_in_many_chunks_equal_the_rows_in_one(monkeypatch, digi_splits):
    whole = text_lines(si.prefix_rows(digi_splits["train"], 5))
    monkeypatch.setattr(text_rows, "CHUNK_BYTES", 300)
    chunks = list(si.prefix_rows(digi_splits["train"], 5))
    assert len(chunks) > 100 and text_lines(chunks) == whole


# --------------------------------------------------------------------------- the diginetica sample


@pytest.mark.parametrize("max_history", [1, 3, 50])
def test_vectorised_rows_equal_the_per_target_loop_on_the_sample(digi_splits, max_history):
    for split in si.SPLITS:
        assert text_lines(si.prefix_rows(digi_splits[split], max_history)) == \
            reference_prefix_rows(digi_splits[split], max_history)


def test_event_rows_are_the_events_in_session_order(digi_splits):
    lines = text_lines(si.event_rows(digi_splits["test"]))
    ordered = si._ordered_sessions(digi_splits["test"])
    assert lines == [f"{s}\t{i}\t{t!r}\n" for s, i, t in zip(ordered["session_id"], ordered["item_id"],
                                                             ordered["timestamp"].astype(float))]


def test_protocol_invariants_on_diginetica(diginetica, digi_splits):
    train, valid, test = (digi_splits[k] for k in si.SPLITS)
    seen = set(train["item_id"])
    for part in (valid, test):
        assert set(part["item_id"]) <= seen
        assert part.groupby("session_id").size().min() >= 2
    assert train.groupby("session_id").size().min() >= 2
    ids = [set(part["session_id"]) for part in (train, valid, test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    # sessions that start in the last day are test, those in the day before are validation
    filtered = si.filter_support(diginetica, 5, 2)
    test_cut = filtered["timestamp"].max() - DAY
    pre_test = filtered[~filtered["session_id"].isin(si.session_start_times(filtered).index[si.session_start_times(filtered) >= test_cut])]
    valid_cut = pre_test["timestamp"].max() - DAY
    starts = [si.session_start_times(part) for part in (train, valid, test)]
    assert starts[2].min() >= test_cut and starts[1].min() >= valid_cut
    assert starts[0].max() < valid_cut and starts[1].max() < test_cut
    summary = si.split_summary(digi_splits)
    for name, part in digi_splits.items():
        assert summary[name]["targets"] == len(part) - part["session_id"].nunique() > 0


def test_written_files_load_with_recboles_own_loader(digi_splits, in_tmp_dir):
    from recbole.config import Config
    from recbole.data import create_dataset

    paths = si.write_benchmark_files(digi_splits, str(in_tmp_dir / "data"), "digi")
    assert [os.path.basename(p) for p in paths] == ["digi.train.inter", "digi.valid.inter", "digi.test.inter", "digi.yaml"]
    config = Config(model="GRU4Rec", dataset="digi", config_file_list=[paths[-1]],
                    config_dict={"data_path": str(in_tmp_dir / "data"), "train_neg_sample_args": None,
                                 "show_progress": False})
    assert config["USER_ID_FIELD"] == "session_id" and config["benchmark_filename"] == ["train", "valid", "test"]
    dataset = create_dataset(config)
    parts = dataset.build()
    summary = si.split_summary(digi_splits)
    assert [len(p) for p in parts] == [summary[k]["targets"] for k in si.SPLITS]
    # history and target tokens share one item index, and histories match the file
    test = parts[2].inter_feat
    written = pd.read_csv(paths[2], sep="\t", dtype=str)
    histories = [h.split(" ") for h in written["item_id_list:token_seq"]]
    lengths = test["item_length"].numpy()
    assert list(lengths) == [len(h) for h in histories]
    decoded = dataset.id2token("item_id", test["item_id_list"].numpy())
    assert [list(row[:n]) for row, n in zip(decoded, lengths)] == histories
    assert list(dataset.id2token("item_id", test["item_id"].numpy())) == list(written["item_id:token"])
    assert dataset.item_num == summary["train"]["items"] + 1  # [PAD] + training items; nothing new in test


def test_written_rows_rebuild_the_sessions(digi_splits, tmp_path):
    paths = si.write_benchmark_files(digi_splits, str(tmp_path), "digi")
    rows = pd.read_csv(paths[0], sep="\t", dtype=str)
    rebuilt = {}
    for session, history, item in zip(rows["session_id:token"], rows["item_id_list:token_seq"], rows["item_id:token"]):
        rebuilt.setdefault(int(session), history.split(" ")).append(item)
    assert rebuilt == sessions_of(digi_splits["train"])
    assert list(rebuilt) == list(si.session_start_times(digi_splits["train"]).sort_values(kind="mergesort").index)
    times = rows["timestamp:float"].astype(float).groupby(rows["session_id:token"]).is_monotonic_increasing
    assert times.all()


def test_existing_files_are_kept_unless_overwrite(tmp_path):
    splits = {k: frame([(k, "a", 1), (k, "b", 2)]) for k in si.SPLITS}
    paths = si.write_benchmark_files(splits, str(tmp_path), "tiny")
    before = open(paths[0]).read()
    with pytest.raises(PluginError, match="already exist.*--overwrite"):
        si.write_benchmark_files({**splits, "train": frame([("t", "b", 1), ("t", "a", 2)])}, str(tmp_path), "tiny")
    assert open(paths[0]).read() == before
    si.write_benchmark_files({**splits, "train": frame([("t", "b", 1), ("t", "a", 2)])}, str(tmp_path), "tiny",
                             overwrite=True)
    assert open(paths[0]).read().splitlines()[1] == "t\tb\ta\t2.0\t1.0"
    assert sorted(os.listdir(tmp_path / "tiny")) == sorted(os.path.basename(p) for p in paths)  # no temp files left


@pytest.mark.parametrize("item, message", [("a b", "contains whitespace"), ("NA", "read as a missing value")])
def test_tokens_recbole_would_misread_are_refused(tmp_path, item, message):
    splits = {k: frame([(1, "a", 1), (1, item, 2)]) for k in si.SPLITS}
    with pytest.raises(PluginError, match=message):
        si.write_benchmark_files(splits, str(tmp_path), "tokens")
    assert not os.path.exists(tmp_path / "tokens")


# --------------------------------------------------------------------------- two files, the command line


def test_two_file_input_uses_the_given_test_set(tmp_path, capsys):
    train_rows = [(s, item, s * 100 + k) for s in range(1, 9) for k, item in enumerate("abc")]
    train_rows += [(9, "a", 3 * DAY), (9, "b", 3 * DAY + 1)]  # starts in the last day: validation
    test_rows = [(20, "a", 4 * DAY), (20, "zzz", 4 * DAY + 1), (20, "c", 4 * DAY + 2), (21, "zzz", 4 * DAY + 3)]
    train = write_tsv(tmp_path / "train.tsv", train_rows)
    test = write_tsv(tmp_path / "test.tsv", test_rows)
    code = load_cli().main(["--input", train, "--test-input", test, "--name", "two", "--data-path", str(tmp_path),
                            "--min-item-support", "1"])
    out = capsys.readouterr().out
    assert code == 0 and "--dataset=two --config_files=" in out
    rows = {k: open(tmp_path / "two" / f"two.{k}.inter").read().splitlines()[1:] for k in si.SPLITS}
    assert rows["test"] == ["20\ta\tc\t345602.0\t345600.0"]
    assert [r.split("\t")[0] for r in rows["valid"]] == ["9"] and len(rows["train"]) == 16


def test_two_files_sharing_a_session_are_refused():
    train = frame([(1, "a", 1), (1, "b", 2), (2, "a", 3), (2, "b", 4)])
    with pytest.raises(PluginError, match="both the training and the test file"):
        si.apply_presplit_protocol(train, frame([(2, "a", 9), (2, "b", 10)]), valid_days=0, min_item_support=1)


@pytest.mark.parametrize("args, message", [
    (["--input", "missing.tsv"], "input file 'missing.tsv' does not exist"),
    (["--input", "{bad_columns}"], "lacks the column(s) SessionId"),
    (["--input", "{bad_time}"], "is not a number"),
    (["--input", "{tiny}", "--min-item-support", "50"], "no events left after dropping items with < 50 events"),
    (["--input", "{tiny}", "--min-item-support", "1", "--test-days", "30"], "every session starts in the last 30 day(s)"),
    (["--input", "{tiny}", "--min-item-support", "1", "--valid-days", "30"], "every training session starts in the last 30"),
    (["--input", DIGINETICA, "--format", "gru4rec"], "lacks the column(s) SessionId, ItemId, Time"),
    (["--input", "{tiny}", "--name", "a/b"], "dataset name 'a/b'"),
])
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(tmp_path, capsys, args, message):
    files = {"bad_columns": write_tsv(tmp_path / "c.tsv", [(1, 2)], "Session\tItem"),
             "bad_time": write_tsv(tmp_path / "t.tsv", [(1, 2, "x")]),
             "tiny": write_tsv(tmp_path / "tiny.tsv", [(s, i, s * DAY + k) for s in range(3) for k, i in enumerate("ab")])}
    argv = [a.format(**files) for a in args]
    argv += [] if "--name" in argv else ["--name", "x"]
    code = load_cli().main(argv + ["--data-path", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not os.path.exists(tmp_path / "out")


def test_cli_imports_the_diginetica_sample_and_prints_the_next_command(tmp_path):
    result = subprocess.run([sys.executable, SCRIPT, "--input", DIGINETICA, "--format", "diginetica", "--name", "digi",
                             "--data-path", "data"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    yaml = os.path.join("data", "digi", "digi.yaml")
    assert f"python run/run.py --model=GRU4RecPlus --dataset=digi --config_files={yaml}" in result.stdout
    assert (tmp_path / "data" / "digi" / "digi.test.inter").is_file()
    assert "test" in result.stdout and "targets" in result.stdout


def test_the_importer_does_not_import_torch_or_recbole():
    with open(si.__file__) as f:
        tree = ast.parse(f.read())
    names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not names & {"torch", "recbole"}


# --------------------------------------------------------------------------- the events layout


def _prepared(model, folder, name):
    from recbole_gru4rec_plus.config import PluginConfig
    from recbole_gru4rec_plus.quick_start import create_dataset, data_preparation

    config = PluginConfig(model, name, [os.path.join(folder, name, f"{name}.yaml")], {"show_progress": False})
    dataset = create_dataset(config)
    return dataset, data_preparation(config, dataset)


def _as_tokens(dataset, field, values):
    if field in (dataset.uid_field, dataset.iid_field, dataset.iid_field + "_list"):
        return [dataset.id2token(field.removesuffix("_list"), v) for v in values.flatten().tolist()]
    return values.tolist()


@pytest.mark.parametrize("model", ["GRU4RecPlus", "STAMP"])
def test_event_files_give_every_model_the_rows_of_the_prefix_files(digi_splits, in_tmp_dir, model):
    """The same splits written both ways: every part's rows (and GRU4RecPlus's training sessions)
    are equal, token for token, for the plugin and for a RecBole model."""
    for layout in ("prefix", "events"):
        si.write_benchmark_files(digi_splits, str(in_tmp_dir / layout), "digi", max_history=10, layout=si.LAYOUTS[layout])
    header = (in_tmp_dir / "events" / "digi" / "digi.train.inter").read_text().splitlines()[0]
    assert header == "session_id:token\titem_id:token\ttimestamp:float"
    (a, parts_a), (b, parts_b) = (_prepared(model, str(in_tmp_dir / layout), "digi") for layout in ("prefix", "events"))
    for part_a, part_b in zip(parts_a, parts_b):
        rows_a, rows_b = part_a.dataset.inter_feat, part_b.dataset.inter_feat
        assert set(rows_a.interaction) == set(rows_b.interaction) and len(rows_a) == len(rows_b) > 0
        for field in rows_a.interaction:
            assert _as_tokens(a, field, rows_a[field]) == _as_tokens(b, field, rows_b[field]), field
    if model == "GRU4RecPlus":
        sessions_a, sessions_b = parts_a[0].dataset.training_sessions, parts_b[0].dataset.training_sessions
        assert np.array_equal(sessions_a.offsets, sessions_b.offsets)
        assert [a.id2token(a.iid_field, i) for i in sessions_a.items] == [b.id2token(b.iid_field, i) for i in sessions_b.items]
    else:
        assert parts_b[0].dataset.inter_feat["item_length"].max() == 10  # the rows' history: MAX_ITEM_LIST_LENGTH


def test_event_layout_is_refused_for_the_session_aware_protocol(tmp_path, capsys):
    log = tmp_path / "log.tsv"
    write_tsv(log, [("u", "s", "a", 1)], header="UserId\tSessionId\tItemId\tTime")
    assert load_cli().main(["--input", str(log), "--name", "x", "--format", "user-sessions", "--layout", "events",
                            "--data-path", str(tmp_path)]) == 2
    assert "--layout events applies to the session protocol only" in capsys.readouterr().err


@pytest.mark.parametrize("shape", ["rsc15", "ml-25m"])
def test_the_scale_benchmark_runs_every_phase_on_a_tiny_slice(tmp_path, shape):
    """bench/bench_scale.py at 1/2000 of the published counts: every phase reports its figures."""
    command = [sys.executable, os.path.join(ROOT, "bench", "bench_scale.py"), "--shape", shape, "--scale", "0.0005",
               "--steps", "5", "--keep", str(tmp_path / "data")]
    output = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert output.returncode == 0, output.stderr[-2000:]
    report = json.loads(output.stdout.strip().splitlines()[-1])
    phases = ["import", "prepare", "train", "evaluate"] if shape == "rsc15" else ["prepare", "train", "evaluate"]
    for phase in phases:
        assert report[phase]["peak_rss_gb"] > 0
    assert report["train"]["events_per_s"] > 0 and report["prepare"]["test_rows"] > 0
