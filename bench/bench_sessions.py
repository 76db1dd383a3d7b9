"""Session-based figures: GRU4RecPlus on the DIGINETICA sample under the session protocol (one epoch:
events/s, Recall@20, MRR@20), and dwell-time slicing with and without a planted dwell signal.

    python bench/bench_sessions.py [--epochs-dwell 40]

One torch thread. The DIGINETICA file is a 12k-event sample: correctness figures, not accuracy claims.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)

from report import publish  # noqa: E402 (bench/ is the script's folder)
DIGINETICA = os.path.join(ROOT, os.pardir, "shared", "data", "diginetica-sample", "train-item-views.csv")
QUIET = {"show_progress": False, "state": "WARNING", "threads": 1}


def diginetica_epoch(work):
    from recbole_gru4rec_plus.quick_start import create_dataset, data_preparation, run
    from recbole_gru4rec_plus.config import PluginConfig
    from recbole_gru4rec_plus.trainer import get_trainer_class

    subprocess.run([sys.executable, os.path.join(ROOT, "run", "import_sessions.py"), "--input", DIGINETICA,
                    "--format", "diginetica", "--name", "digi", "--data-path", work, "--test-days", "7"],
                   check=True, capture_output=True)
    yaml = os.path.join(work, "digi", "digi.yaml")
    config = PluginConfig("GRU4RecPlus", "digi", [yaml], QUIET)
    train, _, _ = data_preparation(config, create_dataset(config))
    trainer = get_trainer_class(config.model_class)(config, config.model_class(config, train.dataset))
    start = time.perf_counter()
    trainer._train_epoch(train, 0)
    events_per_s = train.sessions.n_targets / (time.perf_counter() - start)
    test = run("GRU4RecPlus", "digi", [yaml], {**QUIET, "epochs": 1}, saved=False)["test_result"]
    return f"| DIGINETICA sample, 1 epoch | {events_per_s:,.0f} ev/s | R@20 {test['recall@20']} | MRR@20 {test['mrr@20']} |"


def dwell_rows(work, epochs):
    from recbole_gru4rec_plus.data.synthetic import dwell_sessions, write_atomic_inter
    from recbole_gru4rec_plus.quick_start import run

    rows = []
    for planted in (True, False):
        name = f"dwell_{planted}"
        write_atomic_inter(work, name, *dwell_sessions(4_000, 1_000, planted=planted, seed=1))
        for threshold in (None, 60):
            options = {**QUIET, "data_path": work, "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
                       "n_sample": 512, "epochs": epochs, "stopping_step": 3, "valid_metric": "MRR@20",
                       "dwell_threshold": threshold}
            test = run("GRU4RecPlus", name, None, options, saved=False)["test_result"]
            rows.append(f"| dwell signal {'planted' if planted else 'absent'}, slicing "
                        f"{'60 s' if threshold else 'off'} | R@20 {test['recall@20']} | MRR@20 {test['mrr@20']} |")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs-dwell", type=int, default=40, help="max epochs (early stopping) of the dwell runs")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)
        lines = [diginetica_epoch(work), "", *dwell_rows(work, args.epochs_dwell)]
    publish("sessions", "\n".join(lines))


if __name__ == "__main__":
    main()
