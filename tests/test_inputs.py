"""A catalogue of bad inputs, each as a user would give it to run/run.py or run/import_sessions.py.

Every case must end in exactly one 'error:' line with exit code 2, no traceback, no log file, and
no file the user had changed; the warning cases must run to the end and say what they saw.
"""

import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "run"))
import import_sessions  # noqa: E402 (run/ is not a package)
import run as run_script  # noqa: E402

FAST = ["--epochs=1", "--show_progress=False", "--threads=1", "--user_inter_num_interval=[0,30)", "--n_sample=16"]


def _snapshot(folder):
    """Every file and folder under ``folder``, files with their size and modification time."""
    files = {}
    for parent, folders, names in os.walk(folder):
        files.update({os.path.relpath(os.path.join(parent, name), folder) + "/": "folder" for name in folders})
        for name in names:
            path = os.path.join(parent, name)
            stat = os.stat(path)
            files[os.path.relpath(path, folder)] = (stat.st_size, stat.st_mtime_ns)
    return files


def _call(main, argv, folder, capsys):
    before = _snapshot(folder)
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err, before, _snapshot(folder)


def _assert_one_clear_error(code, err, before, after, *fragments):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err[-2000:]
    assert "Traceback" not in err
    assert lines and lines[-1].startswith("error: "), err[-2000:]
    assert len([line for line in lines if line.startswith("error:")]) == 1
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    assert before == after, "a file was written or changed"  # no log file, nothing of the user's touched


def _run(argv, folder, capsys):
    try:
        code = run_script.main(argv)
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


# ---- options: type, range, rules between keys, unknown keys -------------------------------------

OPTION_CASES = [
    # wrong types (RecBole would fail deep inside, or train with a string)
    (["--learning_rate=abc"], "learning_rate='abc' is not valid: expected a number >= 0"),
    (["--train_batch_size=abc"], "train_batch_size='abc' is not valid: expected an integer >= 1"),
    (["--seed=abc"], "seed='abc' is not valid: expected an integer"),
    (["--sample_alpha=abc"], "sample_alpha='abc' is not valid"),
    (["--epochs=1.5"], "epochs=1.5 is not valid: expected an integer >= 0"),
    (["--layers=abc"], "layers='abc' is not valid: expected a positive integer or a list"),
    (["--shuffle=maybe"], "shuffle='maybe' is not valid: expected True or False"),
    (["--loss=7"], "loss=7 is not valid"),
    # out of range (silently accepted before)
    (["--epochs=-1"], "epochs=-1 is not valid: expected an integer >= 0"),
    (["--session_gap=-5"], "session_gap=-5 is not valid: expected a number > 0"),
    (["--n_sample=-2"], "n_sample=-2 is not valid"),
    (["--sample_alpha=1.5"], "sample_alpha=1.5 is not valid: expected a number >= 0 and <= 1"),
    (["--learning_rate=-0.1"], "learning_rate=-0.1 is not valid"),
    (["--train_batch_size=0"], "train_batch_size=0 is not valid"),
    (["--threads=0"], "threads=0 is not valid"),
    (["--dropout_p_hidden=1"], "dropout_p_hidden=1 is not valid: expected a number >= 0 and < 1"),
    (["--momentum=1"], "momentum=1 is not valid"),
    (["--topk=0"], "topk must be a positive integer"),
    (["--valid_metric=MRR@7"], "valid_metric='MRR@7' is not among the metrics computed"),
    (["--metrics=['Recal']"], "There is no metric named 'Recal'"),
    (["--MAX_ITEM_LIST_LENGTH=0"], "MAX_ITEM_LIST_LENGTH=0 is not valid"),
    (["--stopping_step=-1"], "stopping_step=-1 is not valid"),
    (["--eval_step=x"], "eval_step='x' is not valid"),
    (["--dwell_threshold=-1"], "dwell_threshold=-1 is not valid"),
    (["--dwell_max_copies=0"], "dwell_max_copies=0 is not valid"),
    (["--bpreg=-1"], "bpreg=-1 is not valid"),
    (["--final_act=softplus"], "final_act='softplus' is not valid"),
    (["--logq_tail=sometimes"], "logq_tail='sometimes' is not valid: expected one of original, exact"),
    # rules between keys
    (["--embedding=16"], "constrained_embedding shares the output embedding"),
    (["--logq=1"], "logq (log-Q correction) applies to loss: cross-entropy only"),
    (["--n_sample=0", "--train_batch_size=1"], "set train_batch_size >= 2"),
    # unknown keys: misspelled (silently ignored before)
    (["--n_samples=10"], "unknown option 'n_samples'", "did you mean n_sample?"),
    (["--learning_rat=0.1"], "unknown option 'learning_rat'", "did you mean learning_rate?"),
    # models and the command line
    (["--model=GRU4RecPlusPlus"], "unknown model 'GRU4RecPlusPlus' (names are case-sensitive class names); did you "
                                  "mean GRU4RecPlus"),
    (["--model=GRU4RecPlu"], "unknown model 'GRU4RecPlu' (names are case-sensitive class names); did you mean "
                             "GRU4RecPlus"),
    (["--model=gru4recplus"], "unknown model 'gru4recplus' (names are case-sensitive class names); did you mean "
                              "GRU4RecPlus?"),
    (["--model=sasrec"], "did you mean SASRec?"),
    (["--dataset=no-such-data"], "dataset 'no-such-data' not found"),
    (["stray"], "unrecognised argument 'stray'"),
    (["--threads=abc"], "argument --threads: invalid int value: 'abc'"),
]


@pytest.mark.parametrize("case", OPTION_CASES, ids=lambda case: " ".join(case[0])[:40])
def test_a_bad_option_is_one_clear_error_before_any_work(in_tmp_dir, capsys, case):
    argv, *fragments = case
    before = _snapshot(in_tmp_dir)
    code, _, err = _run([*FAST, *argv], in_tmp_dir, capsys)
    _assert_one_clear_error(code, err, before, _snapshot(in_tmp_dir), *fragments)


def test_an_option_only_other_models_read_is_a_warning_and_the_run_goes_on(in_tmp_dir, capsys):
    code, out, err = _run([*FAST, "--hidden_size=64", "--no_save"], in_tmp_dir, capsys)
    assert code == 0, err[-2000:]
    assert "option hidden_size is read by" in err and "not by GRU4RecPlus: it has no effect here" in err
    assert "test: {'recall@10'" in out


# ---- config files ----------------------------------------------------------------------------

YAML_CASES = {
    "missing": (None, "config file '{path}' does not exist"),
    "folder": ("<folder>", "config file '{path}' is a folder"),
    "empty": ("", "config file '{path}' is empty"),
    "malformed": ("loss: [bpr\n", "config file '{path}' is not valid YAML at line"),
    "list": ("- loss\n- bpr\n", "config file '{path}' holds a list, not 'key: value' lines"),
    "scalar": ("just words\n", "config file '{path}' holds a str"),
    "misspelled key": ("los: bpr\n", "unknown option 'los'", "did you mean loss?"),
    "bad value": ("sample_alpha: lots\n", "sample_alpha='lots' is not valid"),
}


@pytest.mark.parametrize("case", YAML_CASES)
def test_a_bad_config_file_is_one_clear_error(in_tmp_dir, capsys, case):
    content, *fragments = YAML_CASES[case]
    path = in_tmp_dir / "my.yaml"
    if content == "<folder>":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    before = _snapshot(in_tmp_dir)
    code, _, err = _run([*FAST, "--config_files=my.yaml"], in_tmp_dir, capsys)
    _assert_one_clear_error(code, err, before, _snapshot(in_tmp_dir), *(f.format(path="my.yaml") for f in fragments))


# ---- data files ------------------------------------------------------------------------------

HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


def _events(n_users=30, n_items=12, per_user=6):
    return "".join(f"{u}\t{(u * 7 + k) % n_items + 1}\t{1000 * u + k}\n" for u in range(1, n_users + 1) for k in range(per_user))


DATA_CASES = {
    "empty file": ("", "is empty: an atomic file starts with a header"),
    "header only": (HEADER, "has a header but no rows"),
    "unknown type": ("user_id:token\titem_id:int\ttimestamp:float\n1\t2\t3\n", "header column 'item_id:int' is not name:type"),
    "comma separated": ("user_id:token,item_id:token,timestamp:float\n1,2,3\n", "has one column only", "commas"),
    "text time": (HEADER + "1\t2\t1000\n1\t3\tlater\n", "timestamp on line 3 is 'later', not a number"),
    "missing time": (HEADER + "1\t2\t1000\n1\t3\t\n", "timestamp on line 3 is"),
    "one item": (HEADER + "".join(f"{u}\t1\t{u * 10 + k}\n" for u in range(1, 9) for k in range(4)), "1 item(s) after filtering"),
    "fewer items than topk": (HEADER + _events(n_items=12), "topk=[10, 20] asks for more items than the dataset has"),
    "no training target": (HEADER + "".join(f"{u}\t{u % 5 + 1}\t{u}\n" for u in range(1, 40)), "no training target"),
    "filters leave nothing": (HEADER + _events(), "no interactions left after filtering", "user_inter_num_interval=[1000,inf)"),
}


@pytest.mark.parametrize("case", DATA_CASES)
def test_a_bad_atomic_file_is_one_clear_error(in_tmp_dir, capsys, case):
    content, *fragments = DATA_CASES[case]
    (in_tmp_dir / "data" / "mine").mkdir(parents=True)
    (in_tmp_dir / "data" / "mine" / "mine.inter").write_text(content)
    options = ["--dataset=mine", "--data_path=data", "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}",
               "--epochs=1", "--show_progress=False", "--threads=1", "--n_sample=4"]
    if case == "filters leave nothing":
        options.append("--user_inter_num_interval=[1000,inf)")
    before = _snapshot(in_tmp_dir)
    code, _, err = _run(options, in_tmp_dir, capsys)
    _assert_one_clear_error(code, err, before, _snapshot(in_tmp_dir), *fragments)


def test_duplicate_rows_are_counted_in_a_warning_and_dropped_on_request(in_tmp_dir, capsys):
    rows = _events(n_users=40, n_items=60, per_user=8)
    (in_tmp_dir / "data" / "dup").mkdir(parents=True)
    (in_tmp_dir / "data" / "dup" / "dup.inter").write_text(HEADER + rows + rows.splitlines(keepends=True)[0] * 3)
    options = ["--dataset=dup", "--data_path=data", "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}",
               "--epochs=1", "--show_progress=False", "--threads=1", "--n_sample=4", "--no_save", "--topk=[10]",
               "--valid_metric=MRR@10"]
    code, _, err = _run(options, in_tmp_dir, capsys)
    assert code == 0, err[-2000:]
    assert "3 exact duplicate rows" in err and "set drop_duplicate_rows: True" in err
    code, _, err = _run([*options, "--drop_duplicate_rows=True"], in_tmp_dir, capsys)
    assert code == 0, err[-2000:]
    assert "dropped 3 exact duplicate rows" in err


# ---- paths that cannot be written ------------------------------------------------------------


def test_an_unwritable_checkpoint_folder_is_one_clear_error(in_tmp_dir, capsys):
    (in_tmp_dir / "taken").write_text("a file, not a folder")
    before = _snapshot(in_tmp_dir)
    code, _, err = _run([*FAST, "--checkpoint_dir=taken/saved"], in_tmp_dir, capsys)
    _assert_one_clear_error(code, err, before, _snapshot(in_tmp_dir), "checkpoint_dir 'taken/saved' cannot be written")


def test_an_unwritable_log_folder_is_one_clear_error(in_tmp_dir, capsys):
    (in_tmp_dir / "log").write_text("a file where the log folder goes")
    before = _snapshot(in_tmp_dir)
    code, _, err = _run(FAST, in_tmp_dir, capsys)
    _assert_one_clear_error(code, err, before, _snapshot(in_tmp_dir), "log folder", "cannot be written")


# ---- resume ----------------------------------------------------------------------------------

RESUME_CASES = {
    "missing": (None, "checkpoint 'x.pth' does not exist"),
    "not a checkpoint": ("text", "checkpoint 'x.pth' cannot be read"),
}


@pytest.mark.parametrize("case", RESUME_CASES)
def test_a_bad_resume_file_is_one_clear_error(in_tmp_dir, capsys, case):
    content, fragment = RESUME_CASES[case]
    if content is not None:
        (in_tmp_dir / "x.pth").write_text(content)
    before = _snapshot(in_tmp_dir)
    code, _, err = _run(["--resume=x.pth"], in_tmp_dir, capsys)
    _assert_one_clear_error(code, err, before, _snapshot(in_tmp_dir), fragment)


def test_resume_takes_no_other_settings(in_tmp_dir, capsys):
    code, _, err = _run(["--resume=x.pth", "--model=GRU4Rec"], in_tmp_dir, capsys)
    _assert_one_clear_error(code, err, {}, {}, "--resume continues a run as it was configured")
    code, _, err = _run(["--resume=x.pth", "--loss=bpr"], in_tmp_dir, capsys)
    assert code == 2 and "error: checkpoint 'x.pth' does not exist" in err  # files are checked first


# ---- the session importer --------------------------------------------------------------------


def _import(argv, capsys):
    try:
        code = import_sessions.main(argv)
    except SystemExit as stop:
        code = stop.code
    return code, *capsys.readouterr()


def test_an_import_into_an_unwritable_data_path_is_one_clear_error(tmp_path, capsys):
    source = tmp_path / "s.tsv"
    source.write_text("SessionId\tItemId\tTime\n" + "".join(f"{s}\t{i}\t{s * 100 + i}\n" for s in range(60) for i in range(1, 6)))
    (tmp_path / "taken").write_text("a file")
    before = _snapshot(tmp_path)
    code, _, err = _import(["--input", str(source), "--name", "x", "--data-path", str(tmp_path / "taken" / "d"),
                            "--test-days", "0.002", "--min-item-support", "1"], capsys)
    _assert_one_clear_error(code, err, before, _snapshot(tmp_path), "cannot write to --data-path")


def test_an_import_never_replaces_a_folder_holding_other_files(tmp_path, capsys):
    source = tmp_path / "s.tsv"
    source.write_text("SessionId\tItemId\tTime\n" + "".join(f"{s}\t{i}\t{s * 100 + i}\n" for s in range(60) for i in range(1, 6)))
    (tmp_path / "d" / "x").mkdir(parents=True)
    (tmp_path / "d" / "x" / "notes.txt").write_text("mine")
    before = _snapshot(tmp_path)
    code, _, err = _import(["--input", str(source), "--name", "x", "--data-path", str(tmp_path / "d"), "--overwrite",
                            "--test-days", "0.002", "--min-item-support", "1"], capsys)
    _assert_one_clear_error(code, err, before, _snapshot(tmp_path), "also holds notes.txt")


def test_an_unknown_model_is_one_short_line_with_the_closest_names(in_tmp_dir, capsys):
    code, _, err = _run([*FAST, "--model=GRU4RecPlu"], in_tmp_dir, capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and len(line) < 200 and "did you mean GRU4RecPlus" in line, line


@pytest.mark.parametrize("eval_step", ["0", "-1"])
def test_eval_step_below_one_trains_without_validation_and_tests_the_final_model_as_recbole_does(in_tmp_dir, capsys,
                                                                                                eval_step):
    code, out, err = _run([*FAST[1:], "--epochs=2", f"--eval_step={eval_step}", "--stopping_step=0"], in_tmp_dir, capsys)
    assert code == 0, err[-2000:]
    assert "best valid: {}" in out and "test: {'recall@10'" in out
    assert "evaluating" not in err  # no validation epoch


@pytest.mark.parametrize("model", ["GRU4RecPlus", "GRU4Rec"])
def test_epochs_0_tests_the_initial_model_and_learning_rate_0_trains_nothing_as_recbole_does(in_tmp_dir, capsys, model):
    small = [*FAST[1:], f"--model={model}"] + (["--hidden_size=16", "--embedding_size=16"] if model == "GRU4Rec" else [])
    code, out, err = _run([*small, "--epochs=0"], in_tmp_dir, capsys)
    assert code == 0 and "test: {'recall@10'" in out, err[-2000:]
    untrained = out.split("test: ")[1].splitlines()[0]
    code, out, err = _run([*small, "--epochs=1", "--learning_rate=0"], in_tmp_dir, capsys)
    assert code == 0 and out.split("test: ")[1].splitlines()[0] == untrained, err[-2000:]  # nothing moved


def test_duplicate_rows_by_hash_equal_pandas_duplicated():
    import numpy as np
    import pandas as pd

    from recbole_gru4rec_plus.data.checks import exact_duplicate_rows

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user": pd.Categorical(rng.integers(0, 30, 5000).astype(str)),
                          "item": rng.integers(0, 40, 5000), "rating": rng.integers(1, 3, 5000) / 2.0,
                          "time": rng.integers(0, 3, 5000).astype(float)})
    expected = frame.duplicated().to_numpy()
    assert expected.sum() > 100 and (~expected).sum() > 100
    assert np.array_equal(exact_duplicate_rows(frame), expected)
    assert np.array_equal(exact_duplicate_rows(frame, chunk=777), expected)  # hashed in chunks: the same hashes
    assert not exact_duplicate_rows(frame.iloc[:0]).size
