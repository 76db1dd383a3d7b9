"""Training throughput of GRU4RecPlus on synthetic Zipf sessions (events/s of one training epoch).

Runs the real pipeline (PluginConfig -> create_dataset -> data_preparation -> model -> trainer
``_train_epoch``) for train_batch_size 32 and 64 with bpr-max (final_act elu-0.5) and
cross-entropy (final_act linear). Every measurement runs in its own subprocess, so the peak RSS
reported is that configuration's. Prints a table and writes it to bench/results/throughput.md.

    python bench/bench_throughput.py                     # 200k events, 1 thread
    python bench/bench_throughput.py --events 50000      # quicker
    python bench/bench_throughput.py --compare /tmp/old  # also time the package copy in /tmp/old
    python bench/bench_throughput.py --compare-anomaly   # baseline: autograd anomaly detection on

``--compare DIR`` takes a folder holding another copy of ``recbole_gru4rec_plus/`` and
``properties/`` (e.g. an older checkout); its runs are interleaved with the current code's, so
both see the same machine load. ``--compare-anomaly`` times, as the baseline, the current code
with ``torch.autograd.set_detect_anomaly(True)``, which importing RecBole's models turned on for
the whole process until the plugin turned it back off. On a shared machine, benchmark with one thread and use
``--rounds`` (each configuration timed that many times, alternating, the fastest run counts).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = [(32, "bpr-max"), (64, "bpr-max"), (32, "cross-entropy"), (64, "cross-entropy")]
FINAL_ACT = {"bpr-max": "elu-0.5", "cross-entropy": "linear"}
DATASET = "synth"


def make_data(folder, n_events):
    """Write the synthetic session set (n_events events, n_events/16 sessions, 5k Zipf items)."""
    from recbole_gru4rec_plus.data.synthetic import write_atomic_inter, zipf_sessions

    sessions, items, times = zipf_sessions(n_events, n_events // 16, 5_000)
    return write_atomic_inter(folder, DATASET, sessions, items, times)


def worker(args):
    """One configuration in this process: build everything, time ``epochs`` epochs, print JSON."""
    import resource

    import torch

    torch.set_num_threads(args.threads)
    from recbole.utils import init_logger, init_seed

    import recbole_gru4rec_plus
    from recbole_gru4rec_plus.config import PluginConfig
    from recbole_gru4rec_plus.quick_start import create_dataset, data_preparation
    from recbole_gru4rec_plus.trainer import get_trainer_class

    options = {
        "data_path": args.data_path, "train_batch_size": args.batch_size, "loss": args.loss,
        "final_act": FINAL_ACT[args.loss], "show_progress": False, "state": "WARNING",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    }
    config = PluginConfig("GRU4RecPlus", DATASET, None, options)
    init_seed(config["seed"], True)
    init_logger(config)
    torch.set_num_threads(args.threads)  # after init_seed/init_logger, in case they touch it
    train_data, _, _ = data_preparation(config, create_dataset(config))
    model = config.model_class(config, train_data.dataset)
    trainer = get_trainer_class(config.model_class)(config, model)
    torch.autograd.set_detect_anomaly(args.detect_anomaly)
    times, losses = [], []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        losses.append(trainer._train_epoch(train_data, epoch))
        times.append(time.perf_counter() - start)
    targets = train_data.sessions.n_targets
    print(json.dumps({
        "events_per_s": targets / min(times), "seconds": min(times), "targets": targets,
        "steps": len(train_data), "loss": losses[0], "threads": torch.get_num_threads(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "package": os.path.dirname(recbole_gru4rec_plus.__file__),
    }))


def run_worker(args, source, batch_size, loss, detect_anomaly=False):
    """Run one configuration in a subprocess, importing the package from ``source``; its JSON dict."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")])))
    command = [
        sys.executable, os.path.abspath(__file__), "--worker", "--data-path", args.data_path,
        "--batch-size", str(batch_size), "--loss", loss, "--threads", str(args.threads), "--epochs", str(args.epochs),
    ] + ["--detect-anomaly"] * detect_anomaly
    with tempfile.TemporaryDirectory() as cwd:  # RecBole writes log/ and saved/ into the working directory
        done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"worker failed for batch {batch_size}, {loss} ({source}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = os.path.join(os.path.realpath(source), "recbole_gru4rec_plus")
    if os.path.realpath(result["package"]) != expected:
        sys.exit(f"worker imported {result['package']}, not {expected}")
    return result


def table(rows, compare):
    """Markdown table of the results (with the baseline's columns when comparing)."""
    head = "| batch | loss | events/s | ms/step | peak RSS MiB | epoch loss |"
    rule = "|---:|---|---:|---:|---:|---:|"
    if compare:
        head += " baseline events/s | baseline RSS MiB | speed-up |"
        rule += "---:|---:|---:|"
    lines = [head, rule]
    for (batch_size, loss), new, old in rows:
        line = (f"| {batch_size} | {loss} | {new['events_per_s']:,.0f} | {1e3 * new['seconds'] / new['steps']:.2f} "
                f"| {new['peak_rss_mib']:.0f} | {new['loss']:.4f} |")
        if compare:
            line += f" {old['events_per_s']:,.0f} | {old['peak_rss_mib']:.0f} | {new['events_per_s'] / old['events_per_s']:.2f}x |"
        lines.append(line)
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--events", type=int, default=200_000, help="synthetic events (default 200000)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs timed per run; the fastest counts")
    parser.add_argument("--rounds", type=int, default=1, help="runs per configuration (and version); the fastest counts")
    parser.add_argument("--compare", metavar="DIR", help="also time the package copy in DIR, interleaved")
    parser.add_argument("--compare-anomaly", action="store_true", help="baseline: the current code with anomaly detection on")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "throughput.md"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-path", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--loss", help=argparse.SUPPRESS)
    parser.add_argument("--detect-anomaly", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    sys.path.insert(0, ROOT)
    with tempfile.TemporaryDirectory() as folder:
        args.data_path = make_data(folder, args.events)
        rows = []
        for batch_size, loss in CONFIGS:
            runs = {"old": [], "new": []}
            for _ in range(args.rounds):
                if args.compare:
                    runs["old"].append(run_worker(args, os.path.abspath(args.compare), batch_size, loss))
                elif args.compare_anomaly:
                    runs["old"].append(run_worker(args, ROOT, batch_size, loss, detect_anomaly=True))
                runs["new"].append(run_worker(args, ROOT, batch_size, loss))
            old, new = (max(runs[key], key=lambda run: run["events_per_s"]) if runs[key] else None for key in ("old", "new"))
            rows.append(((batch_size, loss), new, old))
            print(f"batch {batch_size:>3} {loss:<13} {new['events_per_s']:>9,.0f} events/s  "
                  f"peak RSS {new['peak_rss_mib']:.0f} MiB"
                  + (f"  (baseline {old['events_per_s']:,.0f} events/s)" if old else ""), flush=True)
    text = table(rows, args.compare or args.compare_anomaly)
    header = (f"{args.events} synthetic events, {rows[0][1]['targets']} training targets, {args.threads} thread(s), "
              f"best of {args.rounds} run(s) x {args.epochs} epoch(s), {time.strftime('%Y-%m-%d %H:%M')}")
    print("\n" + header + "\n\n" + text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write(f"# GRU4RecPlus training throughput\n\n{header}\n\n{text}\n")
    with open(os.path.splitext(args.out)[0] + ".json", "w") as handle:
        json.dump([{"batch_size": b, "loss": l, "current": new, "baseline": old} for (b, l), new, old in rows],
                  handle, indent=1)


if __name__ == "__main__":
    main()
