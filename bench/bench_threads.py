"""Torch threads on a quiet and on a loaded machine: training steps per second of GRU4RecPlus,
HRNN and a RecBole model (NARM) on ml-100k with 1 thread and with every core, measured side by
side in one run. "Loaded" runs a busy single-threaded process beside the measurement (as another
job on the machine would), "quiet" runs nothing else. This is what chose the plugin's default
``threads: 1`` (properties/overall.yaml).

    python bench/bench_threads.py [--scale 1.0] [--rounds 2]

Stop every other job first (e.g. kill -STOP a sweep, kill -CONT it after): the quiet rows are
only quiet if nothing else runs.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# options and timed steps (about 3-15 s of training each on one thread)
MODELS = {"GRU4RecPlus": ({}, 400), "HRNN": ({"session_gap": 3600}, 400), "NARM": ({}, 10)}

_STEPS = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import torch
model_name, threads, steps, options = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5])
torch.set_num_threads(threads)
from recbole_gru4rec_plus.config import PluginConfig
from recbole_gru4rec_plus.quick_start import create_dataset, data_preparation
from recbole_gru4rec_plus.trainer import get_trainer_class
config = PluginConfig(model_name, "ml-100k", None, {"threads": threads, "show_progress": False, **options})
train, _, _ = data_preparation(config, create_dataset(config))
model = config.model_class(config, train.dataset)
trainer = get_trainer_class(config.model_class)(config, model)
if hasattr(model, "reset_session_state"):
    model.reset_session_state()
model.train()
done, start = 0, None
while done < steps + 3:
    for batch in train:
        if done == 3:
            start = time.perf_counter()  # three warm-up steps
        trainer.optimizer.zero_grad(set_to_none=True)
        model.calculate_loss(batch).backward()
        trainer.optimizer.step()
        done += 1
        if done == steps + 3:
            break
print(json.dumps({"steps_per_second": steps / (time.perf_counter() - start)}))
"""

_BUSY = "import numpy as np\nx = np.random.rand(400, 400)\nwhile True:\n    x = np.tanh(x @ x / 400)\n"


def measure(model, threads, scale, folder):
    options, steps = MODELS[model]
    steps = max(2, int(steps * scale))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    result = subprocess.run([sys.executable, "-c", _STEPS, ROOT, model, str(threads), str(steps),
                             json.dumps(options)], cwd=folder, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["steps_per_second"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="times the timed steps of each model")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per configuration; the fastest counts")
    args = parser.parse_args()
    cores = os.cpu_count()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for load in ("quiet", "loaded"):
            busy = None
            if load == "loaded":
                busy = subprocess.Popen([sys.executable, "-c", _BUSY],
                                        env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
            try:
                for model in MODELS:
                    rates = {t: max(measure(model, t, args.scale, folder) for _ in range(args.rounds))
                             for t in (1, cores)}
                    rows.append((load, model, rates[1], rates[cores]))
            finally:
                if busy:
                    busy.kill()
                    busy.wait()
    lines = [f"Training steps per second on ml-100k, 1 thread vs {cores} threads ({cores} cores), fastest of "
             f"{args.rounds}; loaded = one busy single-threaded process beside it", "",
             f"| machine | model | 1 thread | {cores} threads | {cores} threads / 1 thread |", "|---|---|---:|---:|---:|"]
    lines += [f"| {load} | {model} | {one:.2f} | {many:.2f} | {many / one:.2f}x |" for load, model, one, many in rows]
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from report import publish

    publish("threads", "\n".join(lines))


if __name__ == "__main__":
    main()
