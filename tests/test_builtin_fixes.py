"""RecBole built-in models fixed in subclasses of the same name (model/builtin_fixes.py)."""

import torch

from recbole_gru4rec_plus.model import get_model_class
from recbole_gru4rec_plus.model.builtin_fixes import Pop

from helpers import prepare

SPLIT = {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"}


def _trained_pop(**options):
    config, train_data, *_, model = prepare("Pop", eval_args=SPLIT, epochs=1, **options)
    for batch in train_data:
        model.calculate_loss(batch)
    return train_data, model


def test_pop_counts_each_training_interaction_once_whatever_the_batches_and_seed(in_tmp_dir):
    assert get_model_class("Pop") is Pop
    counts = []
    for options in ({"seed": 1}, {"seed": 2}, {"seed": 1, "train_batch_size": 64}):
        train_data, model = _trained_pop(**options)
        items = train_data.dataset.inter_feat["item_id"]
        expected = torch.bincount(items, minlength=model.n_items).unsqueeze(1)
        assert torch.equal(model.item_cnt, expected), options  # RecBole's Pop: once per batch, negatives too
        counts.append(model.item_cnt)
    assert all(torch.equal(counts[0], c) for c in counts[1:])


def test_loading_recbole_models_leaves_autograd_anomaly_detection_off():
    """RecBole's sine.py turns anomaly detection on for the whole process when imported, which made
    every later backward pass several times slower; the plugin turns it back off."""
    import sys

    for name in ("SINE", "STAMP", "GRU4Rec"):
        get_model_class(name)
    assert "recbole.model.sequential_recommender.sine" in sys.modules
    assert not torch.is_anomaly_enabled()


def test_a_run_turns_anomaly_detection_off_whatever_was_imported_first(tmp_path):
    """A Python-API user who imports RecBole's sequential models before the plugin: sine.py has
    turned anomaly detection on for the process, and every run still trains with it off."""
    import subprocess
    import sys

    script = """
import recbole.model.sequential_recommender  # first: sine.py turns anomaly detection on
import torch
assert torch.is_anomaly_enabled()
from recbole_gru4rec_plus.quick_start import run
from recbole_gru4rec_plus.model.gru4rec_plus import GRU4RecPlus
seen = []
original = GRU4RecPlus.train_step  # the trainer's step (fused_step: True, the default)
def train_step(self, batch, optimizer):
    seen.append(torch.is_anomaly_enabled())
    return original(self, batch, optimizer)
GRU4RecPlus.train_step = train_step
run("GRU4RecPlus", "ml-100k", None, {"epochs": 1, "threads": 1, "show_progress": False, "n_sample": 16,
                                     "user_inter_num_interval": "[0,30)"}, saved=False)
assert seen and not any(seen), seen
print("off in every step")
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "off in every step" in result.stdout, result.stderr[-2000:]
