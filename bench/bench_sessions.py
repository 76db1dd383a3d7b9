"""Session-based figures: GRU4RecPlus on the DIGINETICA sample under the session protocol (one epoch:
events/s, Recall@20, MRR@20), and dwell-time slicing with and without a planted dwell signal.

    python bench/bench_sessions.py [--epochs-dwell 4]

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
DIGINETICA = os.path.join(ROOT, "tests", "data", "diginetica-sample", "train-item-views.csv")
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
    """Dwell-time slicing on sessions key, distractors, target (the target from the key's cluster),
    with the long dwell on the key (planted) or on a distractor (control), slicing off and on."""
    import numpy as np
    import pandas as pd

    from recbole_gru4rec_plus.data.session_import import apply_session_protocol, write_benchmark_files
    from recbole_gru4rec_plus.data.synthetic import dwell_key_sessions
    from recbole_gru4rec_plus.quick_start import run

    rows = []
    for planted in (True, False):
        name = f"dwell_{planted}"
        session_ids, items, times = dwell_key_sessions(3_000, planted=planted, seed=1)
        events = pd.DataFrame({"session_id": session_ids, "item_id": items.astype(str), "timestamp": times})
        days = 0.1 * len(np.unique(session_ids))
        write_benchmark_files(apply_session_protocol(events, days, days), work, name)
        for copies in (None, 2, 5):
            options = {**QUIET, "n_sample": 256, "epochs": epochs, "eval_step": 100, "dwell_threshold": 60 if copies else None,
                       "dwell_max_copies": copies or 10}
            test = run("GRU4RecPlus", name, [os.path.join(work, name, f"{name}.yaml")], options, saved=False)["test_result"]
            rows.append(f"| long dwell on {'the key' if planted else 'a distractor'}, slicing "
                        f"{f'on, at most {copies} copies' if copies else 'off'} | R@20 {test['recall@20']} | MRR@20 {test['mrr@20']} |")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs-dwell", type=int, default=4, help="training epochs of the dwell runs")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)
        lines = [diginetica_epoch(work), "", *dwell_rows(work, args.epochs_dwell)]
    publish("sessions", "\n".join(lines))


if __name__ == "__main__":
    main()
