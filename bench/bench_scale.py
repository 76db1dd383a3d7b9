"""Full-size data on one machine: time and peak RSS of each phase of GRU4RecPlus's path, each
phase in a process of its own (its peak RSS is its own: ``resource.getrusage``).

    python bench/bench_scale.py --shape rsc15      # RSC15's counts: import, prepare, train, evaluate
    python bench/bench_scale.py --shape ml-25m     # ml-25m's counts: prepare, train, evaluate
    python bench/bench_scale.py --shape rsc15 --scale 0.1 --steps 500   # a tenth of it, quicker
    python bench/bench_scale.py --shape ml-25m --pipeline recbole --scale 0.1   # RecBole's prefix rows, for contrast

Synthetic logs with the published counts and shapes:
- rsc15: the GRU4Rec papers' RSC15 (YooChoose clicks) after their preprocessing: 31,637,239
  training clicks in 7,966,257 sessions over 37,483 items, a test file of 71,222 clicks in 15,324
  sessions (the day after); session lengths from a power law over 2..200 with RSC15's mean (3.97
  clicks), item popularity Zipf (exponent 1), sessions starting uniformly over 182 days, clicks a
  minute apart on average. Imported with ``run/import_sessions.py --layout events`` (validation: the
  last day of training).
- ml-25m: 25M ratings of 162k users on 59k items (heavy-tailed history lengths, Zipf items),
  RecBole's atomic file, the board's sequential split (leave-one-out, time order).
Phases: import (rsc15), prepare (RecBole's dataset and GRU4RecPlus's loaders), train (prepare,
then ``--steps`` training steps at the model's defaults: events/s, and the epoch that rate gives),
evaluate (prepare, then the full-sort evaluation of the test split).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)

RSC15 = dict(train_events=31_637_239, train_sessions=7_966_257, items=37_483, test_events=71_222, test_sessions=15_324)
ML25M = dict(events=25_000_000, users=162_000, items=59_000)
DAY = 86400.0


def peak_rss_gb():
    """This process's peak resident memory so far (Linux: ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def power_law_lengths(rng, n, mean, low=2, high=200):
    """n session lengths with P(L = k) ~ k^-a on low..high, a chosen so that E[L] = mean."""
    k = np.arange(low, high + 1, dtype=np.float64)
    lo, hi = 1.01, 6.0
    for _ in range(60):  # bisection: the mean falls as the exponent grows
        a = (lo + hi) / 2
        p = k**-a / (k**-a).sum()
        lo, hi = (a, hi) if (p * k).sum() > mean else (lo, a)
    return rng.choice(k.astype(np.int64), size=n, p=p)


def zipf_items(rng, n, n_items, exponent=1.0):
    cdf = np.cumsum(1.0 / np.arange(1, n_items + 1) ** exponent)
    return np.searchsorted(cdf / cdf[-1], rng.random(n)) + 1


def write_session_log(path, n_sessions, mean_length, n_items, first_day, days, rng, first_id=1):
    """A GRU4Rec-format log (SessionId ItemId Time) of synthetic sessions; returns its event count."""
    from recbole_gru4rec_plus.data.text_rows import Value, text_rows

    lengths = power_law_lengths(rng, n_sessions, mean_length)
    sessions = np.repeat(np.arange(first_id, first_id + n_sessions), lengths)
    starts = 1_396_310_400.0 + (first_day + rng.random(n_sessions) * days) * DAY
    gaps = np.cumsum(rng.exponential(60.0, len(sessions)))  # seconds between clicks, cumulated
    first = np.cumsum(lengths) - lengths
    times = np.round(np.repeat(starts, lengths) + gaps - np.repeat(gaps[first], lengths), 3)
    items = zipf_items(rng, len(sessions), n_items)
    with open(path, "wb") as f:
        f.write(b"SessionId\tItemId\tTime\n")
        for chunk in text_rows([Value(sessions), Value(items), Value(times)], np.arange(len(sessions))):
            f.write(chunk)
    return len(sessions)


def write_histories(folder, name, n_events, n_users, n_items, seed=0):
    """RecBole atomic .inter of user histories (user, item, rating, timestamp)."""
    from recbole_gru4rec_plus.data.text_rows import Value, text_rows

    rng = np.random.default_rng(seed)
    weights = rng.pareto(1.2, n_users) + 0.05
    weights /= weights.sum()
    lengths = 1 + np.floor(weights * (n_events - n_users)).astype(np.int64)
    np.add.at(lengths, rng.choice(n_users, n_events - lengths.sum(), p=weights), 1)
    os.makedirs(os.path.join(folder, name), exist_ok=True)
    path = os.path.join(folder, name, f"{name}.inter")
    users = np.repeat(np.arange(1, n_users + 1, dtype=np.int64), lengths)
    items = zipf_items(rng, n_events, n_items, 0.9)
    ratings = rng.integers(1, 11, n_events) / 2
    times = 1_000_000_000 + np.arange(n_events, dtype=np.int64) * 7
    with open(path, "wb") as f:
        f.write(b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for chunk in text_rows([Value(users), Value(items), Value(ratings), Value(times)], np.arange(n_events)):
            f.write(chunk)
    return path


def make_data(args, work):
    """The synthetic input of a shape in ``work``; returns what the phases need to find it."""
    rng = np.random.default_rng(args.seed)
    if args.shape == "rsc15":
        n_train, n_test = (max(10, int(RSC15[key] * args.scale)) for key in ("train_sessions", "test_sessions"))
        train_mean = RSC15["train_events"] / RSC15["train_sessions"]
        test_mean = RSC15["test_events"] / RSC15["test_sessions"]
        counts = {"train_events": write_session_log(os.path.join(work, "train.tsv"), n_train, train_mean, RSC15["items"],
                                                    0, 182, rng),
                  "test_events": write_session_log(os.path.join(work, "test.tsv"), n_test, test_mean, RSC15["items"],
                                                   182, 1, rng, first_id=n_train + 1),
                  "train_sessions": n_train, "test_sessions": n_test, "items": RSC15["items"]}
        return counts
    n_events, n_users = (max(100, int(ML25M[key] * args.scale)) for key in ("events", "users"))
    write_histories(work, "scale", n_events, n_users, ML25M["items"], args.seed)
    return {"events": n_events, "users": n_users, "items": ML25M["items"]}


def _config(args, work, model):
    from recbole_gru4rec_plus.config import PluginConfig

    options = {"show_progress": False, "state": "WARNING", "threads": 1, "data_path": work}
    if args.shape == "rsc15":
        return PluginConfig(model, "rsc15s", [os.path.join(work, "rsc15s", "rsc15s.yaml")], options)
    options.update({"load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]}, "normalize_all": False,
                    "user_inter_num_interval": "[5,inf)", "item_inter_num_interval": "[5,inf)",
                    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"}})
    return PluginConfig(model, "scale", None, options)


def _prepared(args, work, model="GRU4RecPlus"):
    from recbole.utils import init_seed

    from recbole_gru4rec_plus.quick_start import create_dataset, data_preparation, set_threads

    config = _config(args, work, model)
    set_threads(config)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    return config, data_preparation(config, dataset)


def run_phase(args, work):
    """One phase, in this process; prints its figures as one JSON line."""
    figures = {}
    start = time.perf_counter()
    if args.phase == "import":
        import importlib.util

        spec = importlib.util.spec_from_file_location("import_sessions", os.path.join(ROOT, "run", "import_sessions.py"))
        cli = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cli)
        with open(os.devnull, "w") as quiet:
            stdout, sys.stdout = sys.stdout, quiet
            try:
                code = cli.main(["--input", os.path.join(work, "train.tsv"), "--test-input", os.path.join(work, "test.tsv"),
                                 "--name", "rsc15s", "--data-path", work, "--layout", "events", "--overwrite"])
            finally:
                sys.stdout = stdout
        if code:
            sys.exit(f"import failed with exit code {code}")
        figures["seconds"] = time.perf_counter() - start
        figures["files_mb"] = round(sum(os.path.getsize(os.path.join(work, "rsc15s", f))
                                        for f in os.listdir(os.path.join(work, "rsc15s"))) / 2**20, 1)
    elif args.phase == "prepare":
        config, (train, valid, test) = _prepared(args, work, "GRU4Rec" if args.pipeline == "recbole" else "GRU4RecPlus")
        figures["seconds"] = time.perf_counter() - start
        figures["train_targets"] = train.sessions.n_targets if hasattr(train, "sessions") else len(train.dataset)
        figures["valid_rows"], figures["test_rows"] = len(valid.dataset), len(test.dataset)
    elif args.phase == "train":
        figures.update(train_steps(args, work))
    elif args.phase == "evaluate":
        from recbole_gru4rec_plus.trainer import get_trainer_class

        config, (train, valid, test) = _prepared(args, work)
        trainer = get_trainer_class(config.model_class)(config, config.model_class(config, train.dataset))
        start = time.perf_counter()
        result = trainer.evaluate(test, load_best_model=False)
        figures["seconds"] = time.perf_counter() - start
        figures["test_rows"] = len(test.dataset)
        figures["mrr@20_untrained"] = round(float(result["mrr@20"]), 4)
    figures["peak_rss_gb"] = peak_rss_gb()
    print(json.dumps(figures))


def train_steps(args, work):
    """``args.steps`` training steps after preparation: events/s and the epoch it extrapolates to."""
    from recbole_gru4rec_plus.trainer import get_trainer_class

    config, (train, _, _) = _prepared(args, work)
    trainer = get_trainer_class(config.model_class)(config, config.model_class(config, train.dataset))
    trainer.model.train()
    trainer.model.reset_session_state()
    n_steps, epoch_steps = 0, len(train)
    events, warm = 0, min(20, epoch_steps // 2)  # the first steps (allocations) are not timed
    start = time.perf_counter()
    for batch in train:
        if n_steps == warm:
            start, events = time.perf_counter(), 0
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.model.calculate_loss(batch).backward()
        trainer.optimizer.step()
        events += len(batch.inputs)
        n_steps += 1
        if n_steps == warm + args.steps:
            break
    seconds = time.perf_counter() - start
    return {"timed_steps": n_steps - warm, "events_per_s": round(events / seconds), "epoch_steps": epoch_steps,
            "epoch_targets": train.sessions.n_targets,
            "epoch_minutes_extrapolated": round(train.sessions.n_targets / (events / seconds) / 60, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["rsc15", "ml-25m"], default="rsc15")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the published counts (default 1)")
    parser.add_argument("--steps", type=int, default=2000, help="training steps timed in the train phase")
    parser.add_argument("--phases", default=None, help="comma-separated (default: all of the shape's)")
    parser.add_argument("--pipeline", choices=["gru4recplus", "recbole"], default="gru4recplus",
                        help="recbole: RecBole's GRU4Rec and its prefix rows (the prepare phase only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", metavar="DIR", help="write the data to DIR and keep it; reuse it when it is there")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        return run_phase(args, args.work)
    default = ["import", "prepare", "train", "evaluate"] if args.shape == "rsc15" else ["prepare", "train", "evaluate"]
    phases = args.phases.split(",") if args.phases else default
    if args.pipeline == "recbole":
        phases = [phase for phase in phases if phase in ("import", "prepare")]
    report = {"shape": args.shape, "scale": args.scale, "pipeline": args.pipeline}
    with tempfile.TemporaryDirectory() as scratch:
        work = os.path.abspath(args.keep) if args.keep else scratch
        described = os.path.join(work, "data.json")
        if args.keep and os.path.isfile(described):
            with open(described) as f:
                report["data"] = json.load(f)
            if (report["data"].get("shape"), report["data"].get("scale")) != (args.shape, args.scale):
                sys.exit(f"{work} holds --shape {report['data'].get('shape')} --scale {report['data'].get('scale')}: "
                         f"give another --keep folder")
        else:
            os.makedirs(work, exist_ok=True)
            start = time.perf_counter()
            report["data"] = {"shape": args.shape, "scale": args.scale, **make_data(args, work)}
            report["data"]["written_s"] = round(time.perf_counter() - start, 1)
            with open(described, "w") as f:
                json.dump(report["data"], f)
        print(json.dumps(report["data"]), file=sys.stderr)
        for phase in phases:
            command = [sys.executable, os.path.abspath(__file__), "--phase", phase, "--work", work, "--shape", args.shape,
                       "--scale", str(args.scale), "--steps", str(args.steps), "--pipeline", args.pipeline]
            output = subprocess.run(command, capture_output=True, text=True, cwd=work)
            if output.returncode:
                sys.exit(f"phase {phase} failed:\n{output.stderr[-3000:]}")
            report[phase] = json.loads(output.stdout.strip().splitlines()[-1])
            print(f"{phase}: {json.dumps(report[phase])}", file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
