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
                            text=True, preexec_fn=_ctrl_c_as_in_a_terminal)


def _ctrl_c_as_in_a_terminal():
    """SIGINT at its default in the child, as a terminal's Ctrl-C finds it: a shell without job
    control starts background jobs (a CI script run with ``&``) with SIGINT ignored, the child
    inherits that, and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
    # no early stopping: the run cannot end on its own before the signal
    process = _run_process("--epochs=60", "--stopping_step=100", "--seed=5", *SMALL_ARGS, cwd=in_tmp_dir)
    saved, deadline = in_tmp_dir / "saved", time.time() + 300
    while not (saved.is_dir() and any(name.endswith("-last.pth") for name in os.listdir(saved))):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.2)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[-1].startswith("interrupted: the last checkpoint (after epoch ")
    last = lines[-1].split("continue with python run/run.py --resume=")[1]
    epochs = int(lines[-1].split("(after epoch ")[1].split(")")[0]) + 3  # a few epochs past the checkpoint
    resumed = run(resume=str(in_tmp_dir / last), config_dict={"epochs": epochs})
    whole = run("GRU4RecPlus", "ml-100k", config_dict={**SMALL, "epochs": epochs, "stopping_step": 100, "seed": 5})
    assert resumed["test_result"] == whole["test_result"]


RUN = os.path.join(ROOT, "run", "run.py")
TINY = ["--model=GRU4RecPlus", "--dataset=ml-100k", "--show_progress=False", "--threads=1", "--n_sample=16",
        "--user_inter_num_interval=[0,30)"]


def _stopped_at(command, fault, flag, cwd):
    """Run ``command`` until it stops at the ``fault`` moment (faults.py), then kill it there."""
    env = {**os.environ, "RECBOLE_GRU4REC_PLUS_FAULT": fault, "RECBOLE_GRU4REC_PLUS_FAULT_FLAG": str(flag)}
    child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not flag.exists():
        assert child.poll() is None, f"ended before the fault moment: {child.stderr.read().decode()[-2000:]}"
        assert time.time() < deadline
        time.sleep(0.05)
    child.kill()
    child.wait()


def test_a_kill_half_way_through_a_checkpoint_write_keeps_the_previous_one_and_the_run_resumes(tmp_path):
    """Killed in the middle of writing epoch 1's last checkpoint: epoch 0's is whole, and resumes."""
    _stopped_at([sys.executable, RUN, *TINY, "--epochs=3"], "write:-last.pth:2", tmp_path / "flag", tmp_path)
    last = [name for name in os.listdir(tmp_path / "saved") if name.endswith("-last.pth")]
    assert len(last) == 1
    checkpoint = torch.load(tmp_path / "saved" / last[0], weights_only=False)
    assert checkpoint["epoch"] == 0 and "optimizer" in checkpoint  # the previous file, whole
    half_written = [name for name in os.listdir(tmp_path / "saved") if name.endswith(".tmp")]
    assert half_written and os.path.getsize(tmp_path / "saved" / half_written[0]) > 0  # the kill was mid-write
    resumed = subprocess.run([sys.executable, RUN, f"--resume=saved/{last[0]}", "--epochs=3"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming from" in resumed.stderr and "test: {'recall@10'" in resumed.stdout


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


IMPORT = """
import sys
sys.path.insert(0, {root!r})
import pandas as pd
from recbole_gru4rec_plus.data.session_import import apply_session_protocol, write_benchmark_files
rows = [(s, f"{tag}{{i}}", s * 100.0 + i) for s in range(200) for i in range(1, 6)]
events = pd.DataFrame(rows, columns=["session_id", "item_id", "timestamp"])
write_benchmark_files(apply_session_protocol(events, 0.03, 0.03, min_item_support=1), {data!r}, "d", overwrite=True,
                      comments=["tag={tag}"])
"""


def _dataset_tag(folder):
    """The tag of the one import whose files a dataset folder holds (an assertion error for a mix)."""
    assert sorted(os.listdir(folder)) == ["d.test.inter", "d.train.inter", "d.valid.inter", "d.yaml"]
    tag = (folder / "d.yaml").read_text().split("tag=")[1][0]
    for split in ("train", "valid", "test"):
        rows = (folder / f"d.{split}.inter").read_text().splitlines()[1:]
        assert rows and all(row.split("\t")[2].startswith(tag) for row in rows), (split, tag)
    return tag


def test_a_kill_between_the_renames_of_an_import_leaves_the_old_dataset_and_the_next_import_recovers(tmp_path):
    data = tmp_path / "data"
    subprocess.run([sys.executable, "-c", IMPORT.format(root=ROOT, data=str(data), tag="A")], check=True)
    assert _dataset_tag(data / "d") == "A"
    _stopped_at([sys.executable, "-c", IMPORT.format(root=ROOT, data=str(data), tag="B")], "swap:d:1",
                tmp_path / "flag", tmp_path)
    assert not (data / "d").exists()  # killed with the old dataset moved aside and the new one not yet in place
    aside = [name for name in os.listdir(data) if name.startswith(".d.old-")]
    assert len(aside) == 1 and _dataset_tag(data / aside[0]) == "A"  # the old dataset, whole
    subprocess.run([sys.executable, "-c", IMPORT.format(root=ROOT, data=str(data), tag="B")], check=True)
    assert _dataset_tag(data / "d") == "B" and sorted(os.listdir(data)) == ["d"]  # recovered, nothing left over
