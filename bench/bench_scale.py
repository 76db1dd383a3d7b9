"""ml-25m-sized data: time and peak RSS of GRU4RecPlus's path from atomic files to trained steps,
and, for contrast, of RecBole's prefix-augmented pipeline (run it on a 10x smaller slice).

    python bench/bench_scale.py                                 # 25M events, 162k users, 59k items
    python bench/bench_scale.py --events 2500000 --pipeline recbole   # RecBole's prefix rows, 10x smaller

Synthetic histories: Zipf item popularity, per-user lengths from a heavy-tailed distribution,
increasing timestamps. Each measurement runs in a subprocess so that its peak RSS is its own.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)


def write_histories(folder, name, n_events, n_users, n_items, seed=0):
    """RecBole atomic .inter of user histories (user, item, rating, timestamp), written in chunks."""
    rng = np.random.default_rng(seed)
    weights = rng.pareto(1.2, n_users) + 0.05
    weights /= weights.sum()
    lengths = 1 + np.floor(weights * (n_events - n_users)).astype(np.int64)
    np.add.at(lengths, rng.choice(n_users, n_events - lengths.sum(), p=weights), 1)
    os.makedirs(os.path.join(folder, name), exist_ok=True)
    path = os.path.join(folder, name, f"{name}.inter")
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    cdf = np.cumsum(popularity / popularity.sum())
    users = np.repeat(np.arange(1, n_users + 1, dtype=np.int64), lengths)
    with open(path, "w") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for start in range(0, n_events, 2_000_000):
            chunk = users[start : start + 2_000_000]
            items = np.searchsorted(cdf, rng.random(len(chunk))) + 1
            ratings = rng.integers(1, 11, len(chunk)) / 2
            times = 1_000_000_000 + start + np.arange(len(chunk)) * 7
            table = np.column_stack((chunk, items, ratings * 2, times)).astype(np.int64)
            lines = "\n".join(f"{u}\t{i}\t{r / 2}\t{t}" for u, i, r, t in table.tolist())
            f.write(lines + "\n")
    return path


def memory_gb():
    """Current and peak resident memory of this process, GB (Linux /proc)."""
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return tuple(round(int(fields[key].split()[0]) / 2**20, 2) for key in ("VmRSS", "VmHWM"))


def measure(args):
    import torch

    torch.set_num_threads(1)
    from recbole.utils import init_seed

    from recbole_gru4rec_plus.config import PluginConfig
    from recbole_gru4rec_plus.quick_start import create_dataset, data_preparation
    from recbole_gru4rec_plus.trainer import get_trainer_class

    options = {"data_path": args.data_path, "show_progress": False, "state": "WARNING",
               "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]}, "normalize_all": False,
               "user_inter_num_interval": "[5,inf)", "item_inter_num_interval": "[5,inf)"}
    model = "GRU4RecPlus" if args.pipeline == "gru4recplus" else "GRU4Rec"
    figures = {}
    start = time.perf_counter()
    config = PluginConfig(model, "scale", None, options)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    figures["load_s"] = time.perf_counter() - start
    figures["rss_peak_after_load_gb"] = memory_gb()
    start = time.perf_counter()
    train, valid, test = data_preparation(config, dataset)
    figures["prepare_s"] = time.perf_counter() - start
    figures["rss_peak_after_prepare_gb"] = memory_gb()
    if args.pipeline == "gru4recplus":
        trainer = get_trainer_class(config.model_class)(config, config.model_class(config, train.dataset))
        trainer.model.train()
        start, steps = time.perf_counter(), 0
        for batch in train:  # the epoch's schedule is built, then a few steps run
            trainer.optimizer.zero_grad(set_to_none=True)
            trainer.model.calculate_loss(batch).backward()
            trainer.optimizer.step()
            steps += 1
            if steps == args.steps:
                break
        figures["first_steps_s"] = time.perf_counter() - start
        figures["train_targets"] = train.sessions.n_targets
    else:
        figures["train_rows"] = len(train.dataset)
    figures["rss_peak_at_end_gb"] = memory_gb()
    print(json.dumps(figures))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=25_000_000)
    parser.add_argument("--users", type=int, default=162_000)
    parser.add_argument("--items", type=int, default=59_000)
    parser.add_argument("--pipeline", choices=["gru4recplus", "recbole"], default="gru4recplus")
    parser.add_argument("--steps", type=int, default=200, help="training steps to run after preparation")
    parser.add_argument("--data-path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.data_path:
        return measure(args)
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        write_histories(work, "scale", args.events, args.users, args.items)
        print(f"synthetic data written in {time.perf_counter() - start:.0f}s", file=sys.stderr)
        command = [sys.executable, __file__, "--data-path", work, "--pipeline", args.pipeline, "--steps", str(args.steps)]
        output = subprocess.run(command, capture_output=True, text=True, cwd=work)
        if output.returncode:
            sys.exit(output.stderr[-3000:])
        figures = json.loads(output.stdout.strip().splitlines()[-1])
    print(json.dumps({"events": args.events, "users": args.users, "items": args.items, "pipeline": args.pipeline, **figures}))


if __name__ == "__main__":
    main()
