"""Runs that cannot collide and lose nothing: run ids, atomic checkpoints, exact resume, Ctrl-C,
two runs at once, and imports that replace a dataset as a whole."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT
from recbole_gru4rec_plus.quick_start import run
from recbole_gru4rec_plus.runs import atomic_torch_save, new_run_id

RUN = os.path.join(ROOT, "run", "run.py")
SMALL = {"show_progress": False, "state": "WARNING", "user_inter_num_interval": "[0,30)", "n_sample": 16, "threads": 1}
SMALL_ARGS = ["--show_progress=False", "--state=WARNING", "--user_inter_num_interval=[0,30)", "--n_sample=16", "--threads=1"]


def test_run_ids_are_unique_even_within_one_second():
    assert len({new_run_id() for _ in range(300)}) == 300  # 32 random bits: a clash among 300 is ~1e-5 likely


@pytest.mark.parametrize("model", ["GRU4RecPlus", "GRU4Rec"])
def test_resuming_at_an_epoch_boundary_gives_exactly_the_uninterrupted_run(in_tmp_dir, model):
    options = {**SMALL, "hidden_size": 16, "embedding_size": 16} if model == "GRU4Rec" else SMALL
    whole = run(model, "ml-100k", config_dict={**options, "epochs": 4, "seed": 3})
    first = run(model, "ml-100k", config_dict={**options, "epochs": 2, "seed": 3})
    resumed = run(resume=first["last_checkpoint_file"], config_dict={"epochs": 4})
    assert resumed["run_id"] == first["run_id"]
    assert resumed["test_result"] == whole["test_result"] and resumed["best_valid_result"] == whole["best_valid_result"]
    ours, theirs = (torch.load(r["last_checkpoint_file"], weights_only=False)["state_dict"] for r in (resumed, whole))
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)


def test_each_run_has_its_own_log_and_checkpoints_and_tests_its_own_model(in_tmp_dir):
    one = run("GRU4RecPlus", "ml-100k", config_dict={**SMALL, "epochs": 1, "seed": 1, "state": "INFO"})
    two = run("GRU4RecPlus", "ml-100k", config_dict={**SMALL, "epochs": 1, "seed": 2, "state": "INFO"})
    assert one["run_id"] != two["run_id"]
    assert len({one["log_file"], two["log_file"], one["saved_model_file"], two["saved_model_file"]}) == 4
    for result in (one, two):
        assert result["run_id"] in result["saved_model_file"] and os.path.isfile(result["saved_model_file"])
        with open(result["log_file"]) as f:
            assert f"run_id = {result['run_id']}" in f.read()  # each run's log holds that run, not the other


def _run_process(*args, cwd):
    return subprocess.Popen([sys.executable, RUN, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_two_runs_at_once_in_one_folder_each_report_their_own_model(in_tmp_dir):
    processes = [_run_process("--epochs=2", f"--seed={seed}", *SMALL_ARGS, cwd=in_tmp_dir) for seed in (1, 2)]
    outputs = [process.communicate(timeout=600) for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    tests = [next(line for line in out.splitlines() if line.startswith("test: ")) for out, _ in outputs]
    for seed, test in zip((1, 2), tests):
        alone = run("GRU4RecPlus", "ml-100k", config_dict={**SMALL, "epochs": 2, "seed": seed}, saved=True)
        assert test == f"test: {dict(alone['test_result'])}"
    assert tests[0] != tests[1]


def test_ctrl_c_names_the_last_checkpoint_and_resuming_it_completes_the_run(in_tmp_dir):
    process = _run_process("--epochs=30", "--seed=5", *SMALL_ARGS, cwd=in_tmp_dir)
    saved, deadline = in_tmp_dir / "saved", time.time() + 300
    while not (saved.is_dir() and any(name.endswith("-last.pth") for name in os.listdir(saved))):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.2)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[-1].startswith("interrupted: the last checkpoint (after epoch ")
    last = lines[-1].split("continue with python run/run.py --resume=")[1]
    resumed = run(resume=str(in_tmp_dir / last), config_dict={"epochs": 4})
    whole = run("GRU4RecPlus", "ml-100k", config_dict={**SMALL, "epochs": 4, "seed": 5})
    assert resumed["test_result"] == whole["test_result"]


KEEP_SAVING = """
import sys, torch
sys.path.insert(0, {root!r})
from recbole_gru4rec_plus.runs import atomic_torch_save
for version in range(10 ** 6):
    atomic_torch_save({{"version": version, "weights": torch.full((400_000,), float(version))}}, {path!r})
"""


def test_a_kill_at_any_moment_of_a_checkpoint_write_leaves_a_whole_checkpoint(tmp_path):
    path = tmp_path / "model.pth"
    atomic_torch_save({"version": -1, "weights": torch.full((400_000,), -1.0)}, path)
    for delay in (0.3, 0.55, 0.8, 1.1, 1.4):
        child = subprocess.Popen([sys.executable, "-c", KEEP_SAVING.format(root=ROOT, path=str(path))])
        time.sleep(delay)
        child.kill()
        child.wait()
        checkpoint = torch.load(path, weights_only=False)  # whole: it loads, and its contents agree
        assert torch.equal(checkpoint["weights"], torch.full((400_000,), float(checkpoint["version"])))
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"


def test_a_failed_checkpoint_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "model.pth"
    atomic_torch_save({"version": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        atomic_torch_save({"version": 2, "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=False) == {"version": 1}
    assert os.listdir(tmp_path) == ["model.pth"]


KEEP_IMPORTING = """
import sys
sys.path.insert(0, {root!r})
import pandas as pd
from recbole_gru4rec_plus.data.session_import import apply_session_protocol, write_benchmark_files
def events(tag):
    rows = [(s, f"{{tag}}{{i}}", s * 100.0 + i) for s in range(200) for i in range(1, 6)]
    return pd.DataFrame(rows, columns=["session_id", "item_id", "timestamp"])
splits = {{tag: apply_session_protocol(events(tag), 0.03, 0.03, min_item_support=1) for tag in "AB"}}
for k in range(10 ** 6):
    tag = "AB"[k % 2]
    write_benchmark_files(splits[tag], {data!r}, "d", overwrite=True, comments=[f"tag={{tag}}"])
"""


def test_a_kill_during_an_import_leaves_the_old_dataset_or_the_new_one_never_a_mix(tmp_path):
    data = tmp_path / "data"
    for delay in (1.2, 1.5, 1.8, 2.1, 2.4, 2.7):
        child = subprocess.Popen([sys.executable, "-c", KEEP_IMPORTING.format(root=ROOT, data=str(data))])
        time.sleep(delay)
        child.kill()
        child.wait()
        folder = data / "d"
        if not folder.exists():  # killed before the first import finished
            continue
        names = sorted(os.listdir(folder))
        assert names == ["d.test.inter", "d.train.inter", "d.valid.inter", "d.yaml"]
        tag = (folder / "d.yaml").read_text().split("tag=")[1][0]
        for split in ("train", "valid", "test"):
            rows = (folder / f"d.{split}.inter").read_text().splitlines()[1:]
            assert rows and all(row.split("\t")[2].startswith(tag) for row in rows), (split, tag)
    write_then_count = subprocess.run([sys.executable, "-c", KEEP_IMPORTING.replace("10 ** 6", "1").format(
        root=ROOT, data=str(data))], check=True)
    assert write_then_count.returncode == 0
    assert sorted(os.listdir(data)) == ["d"]  # the next import cleared what the killed ones left half-written
