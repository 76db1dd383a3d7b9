"""The GRU4Rec session protocol end to end: import the real DIGINETICA sample, then train and
evaluate GRU4RecPlus and a built-in RecBole model on every next event of the test sessions."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT, DATA
from helpers import prepare

DIGINETICA = os.path.join(DATA, "diginetica-sample", "train-item-views.csv")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sessions")
    command = [sys.executable, os.path.join(ROOT, "run", "import_sessions.py"), "--input", DIGINETICA,
               "--format", "diginetica", "--name", "digi", "--data-path", str(folder), "--test-days", "7"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=folder, check=True)
    counts = {}
    for split in ("train", "valid", "test"):
        with open(folder / "digi" / f"digi.{split}.inter") as f:
            counts[split] = sum(1 for _ in f) - 1
    return folder, str(folder / "digi" / "digi.yaml"), counts, result.stdout


def test_every_test_target_is_evaluated_for_plugin_and_builtin_models(in_tmp_dir, imported):
    folder, yaml, counts, _ = imported
    for model in ("GRU4RecPlus", "GRU4Rec"):
        config, train, valid, test, _ = prepare(model, "digi", config_file_list=[yaml])
        assert len(test.dataset) == counts["test"] and len(valid.dataset) == counts["valid"]
    _, train, *_ = prepare("GRU4RecPlus", "digi", config_file_list=[yaml])
    assert train.sessions.n_targets == counts["train"]  # training sessions rebuilt from the prefix rows


def test_dwell_slicing_reads_the_first_event_time_from_the_history(in_tmp_dir, imported):
    _, yaml, counts, _ = imported
    _, plain, *_ = prepare("GRU4RecPlus", "digi", config_file_list=[yaml])
    _, sliced, *_ = prepare("GRU4RecPlus", "digi", config_file_list=[yaml], dwell_threshold=30, dwell_max_copies=3)
    first_items = plain.sessions.items[plain.sessions.offsets[:-1]]
    sliced_starts = sliced.sessions.items[sliced.sessions.offsets[:-1]]
    assert (first_items == sliced_starts).all()
    assert sliced.sessions.n_targets > plain.sessions.n_targets


@pytest.mark.parametrize("model", ["GRU4RecPlus", "GRU4Rec"])
def test_run_py_trains_on_the_imported_sessions(in_tmp_dir, imported, model):
    _, yaml, _, stdout = imported
    assert f"--config_files={yaml}" in stdout
    command = [sys.executable, os.path.join(ROOT, "run", "run.py"), f"--model={model}", "--dataset=digi",
               f"--config_files={yaml}", "--epochs=1", "--show_progress=False", "--threads=1"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=in_tmp_dir, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test: {'recall@20'" in result.stdout
