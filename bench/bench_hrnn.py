"""HRNN vs GRU4RecPlus: training throughput and accuracy, one thread, ratios within one run.

    python bench/bench_hrnn.py                         # both parts
    python bench/bench_hrnn.py --part speed --events 200000 --rounds 2
    python bench/bench_hrnn.py --part accuracy --epochs 10

speed: events/s of one training epoch on synthetic user sessions (``user_taste_sessions``: 8
sessions per user, 5 events each, ~5k items), GRU4RecPlus (session-parallel) against HRNN in
both modes (user-parallel), same session keys (bpr-max, n_sample 2048, layers [100], batch 32),
runs alternated, the fastest of ``--rounds`` counts.

accuracy: R@20 and MRR@20 under the session-aware protocol (each user's last session is test)
on the real ml-latest-small ratings (sessions cut at 1 h idle) and on synthetic user sessions
with a planted user taste and without one (the control), trained ``--epochs`` epochs with the
same settings, final model tested.
"""

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from report import accuracy_row, publish, speed_and_accuracy  # noqa: E402

MODELS = [("GRU4RecPlus", {}), ("HRNN", {"hrnn_mode": "init"}), ("HRNN", {"hrnn_mode": "all"})]
LOAD = {"load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "session_gap": 3600,
        "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)"}


def _label(model, options):
    return model + (f" ({options['hrnn_mode']})" if "hrnn_mode" in options else "")


def speed(args, folder):
    import torch
    from recbole.utils import init_logger, init_seed

    from recbole_gru4rec_plus.config import PluginConfig
    from recbole_gru4rec_plus.data.synthetic import user_taste_sessions, write_atomic_inter
    from recbole_gru4rec_plus.quick_start import create_dataset, data_preparation
    from recbole_gru4rec_plus.trainer import get_trainer_class

    n_users = args.events // 40
    users, items, times = user_taste_sessions(n_users, 8, n_groups=100, group_size=30, n_openers=2000, session_length=5)
    write_atomic_inter(folder, "users", users, items, times)
    built = []
    for model, options in MODELS:
        config = PluginConfig(model, "users", None, {"data_path": folder, "show_progress": False, "state": "WARNING",
                                                     "train_batch_size": args.batch_size, **LOAD, **options})
        init_seed(config["seed"], True)
        init_logger(config)
        train_data, _, _ = data_preparation(config, create_dataset(config))
        network = config.model_class(config, train_data.dataset)
        built.append((_label(model, options), train_data, get_trainer_class(config.model_class)(config, network)))
    torch.set_num_threads(args.threads)
    best = {label: float("inf") for label, _, _ in built}
    for _ in range(args.rounds):  # alternate the models: each sees the same machine load
        for label, train_data, trainer in built:
            start = time.perf_counter()
            trainer._train_epoch(train_data, 0)
            best[label] = min(best[label], time.perf_counter() - start)
    base = built[0][1].sessions.n_targets / best[built[0][0]]
    lines = [f"{len(items):,} synthetic events of {n_users:,} users (8 sessions of 5 events), batch {args.batch_size}, "
             f"bpr-max, n_sample 2048, layers [100], {args.threads} thread(s), best of {args.rounds} round(s), "
             f"{time.strftime('%Y-%m-%d %H:%M')}", "",
             "| model | training events/s | vs GRU4RecPlus |", "|---|---:|---:|"]
    for label, train_data, _ in built:
        rate = train_data.sessions.n_targets / best[label]
        lines.append(f"| {label} | {rate:,.0f} | {rate / base:.2f}x |")
    publish("hrnn_speed", "\n".join(lines))


def _import_ml_latest_small(folder):
    import pandas as pd

    ratings = pd.read_csv(os.path.join(ROOT, "tests", "data", "ml-latest-small", "ratings.csv"))
    path = os.path.join(folder, "ml-small-users.tsv")
    ratings.rename(columns={"userId": "UserId", "movieId": "ItemId", "timestamp": "Time"})[["UserId", "ItemId", "Time"]].to_csv(
        path, sep="\t", index=False)
    subprocess.run([sys.executable, os.path.join(ROOT, "run", "import_sessions.py"), "--input", path, "--format",
                    "user-sessions", "--session-gap", "3600", "--name", "ml-small-users", "--data-path", folder],
                   check=True, capture_output=True)
    return os.path.join(folder, "ml-small-users", "ml-small-users.yaml")


def _import_synthetic(folder, name, planted):
    import pandas as pd

    from recbole_gru4rec_plus.data.synthetic import user_taste_sessions

    users, items, times = user_taste_sessions(1000, 8, n_groups=50, group_size=20, n_openers=500, session_length=4,
                                              planted=planted, seed=3)
    path = os.path.join(folder, f"{name}.tsv")
    session = (times // 86400).astype(int)
    pd.DataFrame({"UserId": users, "SessionId": session, "ItemId": items, "Time": times}).to_csv(path, sep="\t", index=False)
    subprocess.run([sys.executable, os.path.join(ROOT, "run", "import_sessions.py"), "--input", path, "--format",
                    "user-sessions", "--name", name, "--data-path", folder], check=True, capture_output=True)
    return os.path.join(folder, name, f"{name}.yaml")


def accuracy(args, folder):
    from recbole_gru4rec_plus.quick_start import run

    datasets = [("ml-latest-small (real; 1 h session gap)", "ml-small-users", _import_ml_latest_small(folder)),
                ("synthetic, planted user taste", "taste", _import_synthetic(folder, "taste", True)),
                ("synthetic, no user signal (control)", "control", _import_synthetic(folder, "control", False))]
    lines = [f"session-aware protocol (each user's last session is test, every next event a target), {args.epochs} "
             f"epochs, final model, bpr-max, n_sample 2048, batch 32, layers [100], {time.strftime('%Y-%m-%d %H:%M')}", "",
             "| data | model | R@20 | MRR@20 | R@20 vs GRU4RecPlus | MRR@20 vs GRU4RecPlus | train s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for title, name, config_file in datasets:
        base = None
        for model, options in MODELS:
            config = {"epochs": args.epochs, "train_batch_size": 32, "show_progress": False, "state": "WARNING",
                      "threads": args.threads, **options}
            start = time.perf_counter()
            result = run(model, name, [config_file], config, saved=False)["test_result"]
            seconds = time.perf_counter() - start
            base = base or result
            lines.append(accuracy_row((title, _label(model, options)), result, base, seconds))
            print(lines[-1], flush=True)
    publish("hrnn_accuracy", "\n".join(lines))


def _arguments(parser):
    parser.add_argument("--events", type=int, default=200_000, help="synthetic events for the speed part")
    parser.add_argument("--batch-size", type=int, default=32)


if __name__ == "__main__":
    speed_and_accuracy(__doc__.splitlines()[0], speed, accuracy, _arguments)
