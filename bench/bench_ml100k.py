"""ml-100k: GRU4RecPlus vs RecBole's GRU4Rec — wall time of one training epoch, and test metrics
after training each to early stopping, with peak RSS. One torch thread, both measured in the same run.

    python bench/bench_ml100k.py                 # epoch time + full training of both models
    python bench/bench_ml100k.py --epoch-only    # just the epoch-time ratio (a few minutes)

Each measurement runs in its own subprocess so that its peak RSS is its own.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)

from report import publish  # noqa: E402 (bench/ is the script's folder)

MODELS = {"GRU4RecPlus": {}, "GRU4Rec": {}}  # each with its own YAML defaults


def measure_epoch(model, options):
    """Seconds of one training epoch (data preparation excluded)."""
    from recbole.utils import init_seed

    from recbole_gru4rec_plus.config import PluginConfig
    from recbole_gru4rec_plus.quick_start import create_dataset, data_preparation
    from recbole_gru4rec_plus.trainer import get_trainer_class

    config = PluginConfig(model, "ml-100k", None, options)
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, _ = data_preparation(config, create_dataset(config))
    model = config.model_class(config, train_data.dataset)
    trainer = get_trainer_class(config.model_class)(config, model)
    start = time.perf_counter()
    trainer._train_epoch(train_data, 0)
    return {"epoch_s": time.perf_counter() - start}


def measure_training(model, options):
    from recbole_gru4rec_plus.quick_start import run

    start = time.perf_counter()
    result = run(model, "ml-100k", None, options, saved=True)
    test = result["test_result"]
    return {"train_s": time.perf_counter() - start, "test_mrr@20": test["mrr@20"], "test_recall@20": test["recall@20"]}


def child(args):
    import torch

    torch.set_num_threads(1)
    options = {"show_progress": False, "state": "WARNING", "threads": 1, "stopping_step": args.stopping_step, **MODELS[args.model]}
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)
        figures = measure_epoch(args.model, options) if args.what == "epoch" else measure_training(args.model, options)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


def measure(model, what, stopping_step):
    command = [sys.executable, __file__, "--child", model, "--what", what, "--stopping-step", str(stopping_step)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epoch-only", action="store_true")
    parser.add_argument("--stopping-step", type=int, default=10, help="RecBole's early-stopping patience")
    parser.add_argument("--child", dest="model", help=argparse.SUPPRESS)
    parser.add_argument("--what", default="epoch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model:
        return child(args)
    rows = {model: measure(model, "epoch", args.stopping_step) for model in MODELS}
    if not args.epoch_only:
        for model in MODELS:
            rows[model].update({f"full_{k}": v for k, v in measure(model, "full", args.stopping_step).items()})
    lines = ["| model | " + " | ".join(rows["GRU4RecPlus"]) + " |", "|---" * (len(rows["GRU4RecPlus"]) + 1) + "|"]
    for model, figures in rows.items():
        lines.append(f"| {model} | " + " | ".join(f"{v:.4g}" for v in figures.values()) + " |")
    speedup = rows["GRU4Rec"]["epoch_s"] / rows["GRU4RecPlus"]["epoch_s"]
    lines.append(f"\nepoch speed-up of GRU4RecPlus over RecBole's GRU4Rec: {speedup:.1f}x (one thread, same run)")
    publish("ml100k", "\n".join(lines))


if __name__ == "__main__":
    main()
