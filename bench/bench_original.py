"""GRU4RecPlus beside the original GRU4Rec (hidasib/GRU4Rec_PyTorch_Official), on the same files.

    git clone https://github.com/hidasib/GRU4Rec_PyTorch_Official /tmp/GRU4Rec_PyTorch_Official
    python bench/bench_original.py --original /tmp/GRU4Rec_PyTorch_Official            # accuracy and speed
    python bench/bench_original.py --original DIR --part speed --rounds 2               # speed only
    python bench/bench_original.py --original DIR --part accuracy --seeds 1 2 3         # accuracy only

The original is imported from DIR and run as it is (its own iterator, sampler, optimizer and
``evaluation.batch_eval``); nothing of it is copied here. Both train on the same training file
and are tested on the same test file, made by this package's GRU4Rec session protocol
(REFERENCE §8) from: the real DIGINETICA sample and ml-latest-small ratings (user histories
cut at 1 h gaps, as sessions) that the tests ship, and synthetic Zipf sessions with a planted
item-to-item signal. Both use the same hyperparameters: GRU4RecPlus's defaults (BPR-max) and
the original's published RSC15 setting (``paper/gru4rec_rsc15.yaml``: cross-entropy, log-Q),
resolved through GRU4RecPlus's config and handed to the original in its own names. Both train
the same number of epochs and test the final model: the original with its own evaluator,
GRU4RecPlus with RecBole's; ``--transplant`` also scores the original's trained weights with
RecBole's evaluator, to show that the two evaluators agree.

Speed: training events (targets) per second of whole epochs, one torch thread, each run in its
own process, the two implementations interleaved so that they see the same machine load.
"""

import argparse
import contextlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
sys.path.insert(0, ROOT)

from report import publish  # noqa: E402 (bench/ is the script's folder)

DATA = os.path.join(ROOT, "tests", "data")
SETTINGS = {"defaults": [], "rsc15": ["paper/gru4rec_rsc15.yaml"]}  # config files layered over the dataset's


# --------------------------------------------------------------------------- the shared files


def _events(name, n_events):
    """(events frame, test days) of a named source, as the session importer reads it."""
    import numpy as np
    import pandas as pd

    from recbole_gru4rec_plus.data import session_import
    from recbole_gru4rec_plus.data.synthetic import zipf_sessions

    if name == "diginetica":
        return session_import.read_diginetica(os.path.join(DATA, "diginetica-sample", "train-item-views.csv")), 7
    if name == "ml-small-sessions":
        ratings = pd.read_csv(os.path.join(DATA, "ml-latest-small", "ratings.csv"))
        ratings = ratings.sort_values(["userId", "timestamp"], kind="mergesort")
        new_session = (ratings["userId"].diff() != 0) | (ratings["timestamp"].diff() > 3600)
        return pd.DataFrame({"session_id": new_session.cumsum().to_numpy(), "item_id": ratings["movieId"].astype(str).to_numpy(),
                             "timestamp": ratings["timestamp"].astype(np.float64).to_numpy()}), 730
    sessions, items, times = zipf_sessions(n_events, n_events // 16, 5_000, transition_strength=0.5, seed=1)
    # one session a day (zipf_sessions' times): the last 4% of the days are the test set, as many validation
    return pd.DataFrame({"session_id": sessions, "item_id": items.astype(str), "timestamp": times.astype(np.float64)}), \
        (n_events // 16) * 0.04


def build_dataset(work, name, n_events):
    """Import one source by the session protocol; write RecBole's files and the original's TSVs."""
    from recbole_gru4rec_plus.data import session_import

    events, test_days = _events(name, n_events)
    splits = session_import.apply_session_protocol(events, test_days, test_days)
    session_import.write_benchmark_files(splits, work, name)
    files = {}
    for split in ("train", "test"):
        files[split] = os.path.join(work, name, f"original.{split}.tsv")
        frame = splits[split].rename(columns={"session_id": "SessionId", "item_id": "ItemId", "timestamp": "Time"})
        frame[["SessionId", "ItemId", "Time"]].to_csv(files[split], sep="\t", index=False)
    summary = session_import.split_summary(splits)
    return {"name": name, "yaml": os.path.join(work, name, f"{name}.yaml"), **files,
            "train_targets": summary["train"]["targets"], "test_targets": summary["test"]["targets"],
            "items": summary["train"]["items"]}


def resolved_options(dataset, setting, overrides):
    """GRU4RecPlus's config for a run, and the same hyperparameters in the original's names."""
    from recbole_gru4rec_plus.config import PluginConfig

    config = PluginConfig("GRU4RecPlus", dataset["name"], [dataset["yaml"], *SETTINGS[setting]], dict(overrides))
    loss = config["loss"]
    final_act = config["final_act"] or ("linear" if loss == "cross-entropy" else "elu-0.5")
    elu = 0.0 if final_act == "linear" else float(final_act.split("-", 1)[1])
    original = {
        "loss": loss, "layers": list(config["layers"]), "batch_size": config["train_batch_size"],
        "dropout_p_embed": config["dropout_p_embed"], "dropout_p_hidden": config["dropout_p_hidden"],
        "learning_rate": config["learning_rate"], "momentum": config["momentum"], "n_sample": config["n_sample"],
        "sample_alpha": config["sample_alpha"], "embedding": config["embedding"],
        "constrained_embedding": bool(config["constrained_embedding"]), "n_epochs": config["epochs"],
        "bpreg": config["bpreg"], "elu_param": elu, "logq": float(config["logq"] or 0.0),
    }
    return original


# --------------------------------------------------------------------------- the two workers


def worker_ours(spec):
    """Train GRU4RecPlus for the given epochs, test the final model with RecBole's evaluator."""
    import torch

    torch.set_num_threads(1)
    from recbole.utils import init_seed

    from recbole_gru4rec_plus.config import PluginConfig
    from recbole_gru4rec_plus.quick_start import create_dataset, data_preparation
    from recbole_gru4rec_plus.trainer import get_trainer_class

    dataset = spec["dataset"]
    options = {**spec["overrides"], "show_progress": False, "state": "WARNING", "threads": 1}
    config = PluginConfig("GRU4RecPlus", dataset["name"], [dataset["yaml"], *SETTINGS[spec["setting"]]], options)
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, test_data = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data.dataset)
    trainer = get_trainer_class(config.model_class)(config, model)
    torch.set_num_threads(1)
    seconds = []
    for epoch in range(config["epochs"]):
        start = time.perf_counter()
        trainer._train_epoch(train_data, epoch)
        seconds.append(time.perf_counter() - start)
    result = {"epoch_seconds": seconds, "targets": int(train_data.sessions.n_targets)}
    if spec["evaluate"]:
        test = trainer.evaluate(test_data, load_best_model=False)
        result.update(recall=float(test["recall@20"]), mrr=float(test["mrr@20"]))
    return result


def worker_original(spec):
    """Train the original (imported from spec['original']) and test it with its own evaluator."""
    import numpy as np
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, spec["original"])
    from gru4rec_pytorch import GRU4Rec  # the original, as it is
    import evaluation

    torch.manual_seed(spec["seed"])
    np.random.seed(spec["seed"])
    read = lambda path: pd.read_csv(path, sep="\t", dtype={"SessionId": np.int64, "ItemId": str, "Time": np.float64})
    gru = GRU4Rec(device=torch.device("cpu"), **spec["params"])
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        gru.fit(read(spec["dataset"]["train"]))
    seconds = [float(s) for s in re.findall(r"^Epoch\d+ --> loss: \S+\s+\(([\d.]+)s\)", log.getvalue(), re.M)]
    if gru.error_during_train or len(seconds) != spec["params"]["n_epochs"]:
        raise RuntimeError(f"the original did not finish training:\n{log.getvalue()[-2000:]}")
    result = {"epoch_seconds": seconds, "targets": int(spec["dataset"]["train_targets"])}
    if spec["evaluate"]:
        test = read(spec["dataset"]["test"])
        with contextlib.redirect_stdout(io.StringIO()):  # its batch may not exceed the number of test sessions
            recall, mrr = evaluation.batch_eval(gru, test, cutoff=[20], batch_size=min(512, test["SessionId"].nunique()),
                                                mode="standard")
        result.update(recall=float(recall[20]), mrr=float(mrr[20]))
        if spec.get("transplant"):
            result.update(transplanted_metrics(spec, gru))
    return result


def transplanted_metrics(spec, gru):
    """The original's trained weights in a GRU4RecPlus (one layer, constrained embedding), tested
    with RecBole's evaluator: the same model under the other evaluator."""
    import torch

    from recbole_gru4rec_plus.config import PluginConfig
    from recbole_gru4rec_plus.quick_start import create_dataset, data_preparation
    from recbole_gru4rec_plus.trainer import get_trainer_class

    dataset = spec["dataset"]
    options = {**spec["overrides"], "show_progress": False, "state": "WARNING"}
    config = PluginConfig("GRU4RecPlus", dataset["name"], [dataset["yaml"], *SETTINGS[spec["setting"]]], options)
    train_data, _, test_data = data_preparation(config, create_dataset(config))
    model = config.model_class(config, train_data.dataset).eval()
    original, cell = gru.model, gru.model.G[0]
    tokens = train_data.dataset.field2id_token["item_id"][1:]  # our ids 1.. -> the item tokens
    index = torch.as_tensor(gru.data_iterator.itemidmap[tokens].to_numpy(), dtype=torch.long)
    with torch.no_grad():
        model.item_embedding.weight[1:] = original.Wy.weight[index]
        model.item_bias.weight[1:] = original.By.weight[index]
        model.input_projections[0].weight.copy_(cell.weight_ih)
        model.input_projections[0].bias.copy_(cell.bias_ih)
        model.gru_layers[0].hidden_weight.copy_(cell.weight_hh.t())
        model.gru_layers[0].hidden_bias.copy_(cell.bias_hh)
    test = get_trainer_class(config.model_class)(config, model).evaluate(test_data, load_best_model=False)
    return {"transplant_recall": float(test["recall@20"]), "transplant_mrr": float(test["mrr@20"])}


def run_worker(kind, spec):
    """Run one worker in its own process (its own memory, one thread); its result dict."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=ROOT)
    with tempfile.TemporaryDirectory() as cwd:  # RecBole writes log/ and saved/ into the working directory
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", kind, json.dumps(spec)],
                              env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{kind} worker failed ({spec['dataset']['name']}, {spec['setting']}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the two parts


def _spec(args, dataset, setting, seed, overrides, evaluate):
    overrides = {"seed": seed, **overrides}
    return {"dataset": dataset, "setting": setting, "seed": seed, "overrides": overrides, "evaluate": evaluate,
            "params": resolved_options(dataset, setting, overrides), "original": args.original,
            "transplant": args.transplant}


def _mean_sd(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def accuracy(args, datasets):
    lines = [f"Accuracy: trained {args.epochs} epochs, the final model tested on every next event of the test "
             f"sessions (R@20, MRR@20; mean ± sd over seeds {', '.join(map(str, args.seeds))}).", "",
             "| data (train / test targets, items) | setting | original R@20 | ours R@20 | diff | original MRR@20 "
             "| ours MRR@20 | diff |" + (" original weights, RecBole's evaluator R@20 / MRR@20 |" if args.transplant else ""),
             "|---|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if args.transplant else "")]
    for dataset in datasets:
        for setting in args.settings:
            runs = {"original": [], "ours": []}
            for seed in args.seeds:
                spec = _spec(args, dataset, setting, seed, {"epochs": args.epochs}, evaluate=True)
                runs["original"].append(run_worker("original", spec))
                runs["ours"].append(run_worker("ours", spec))
                print(f"{dataset['name']} {setting} seed {seed}: original R@20 {runs['original'][-1]['recall']:.4f} "
                      f"MRR@20 {runs['original'][-1]['mrr']:.4f} | ours R@20 {runs['ours'][-1]['recall']:.4f} "
                      f"MRR@20 {runs['ours'][-1]['mrr']:.4f}", flush=True)
            cells = []
            for metric in ("recall", "mrr"):
                (om, osd), (nm, nsd) = (_mean_sd([r[metric] for r in runs[k]]) for k in ("original", "ours"))
                cells += [f"{om:.4f} ± {osd:.4f}", f"{nm:.4f} ± {nsd:.4f}", f"{100 * (nm / om - 1):+.1f}%"]
            if args.transplant:
                cells.append(" / ".join(f"{statistics.mean(r[f'transplant_{m}'] for r in runs['original']):.4f}"
                                        for m in ("recall", "mrr")))
            label = f"{dataset['name']} ({dataset['train_targets']:,} / {dataset['test_targets']:,}, {dataset['items']:,})"
            lines.append(f"| {label} | {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def speed(args, datasets):
    lines = [f"Speed: training events/s over {args.speed_epochs} whole epoch(s), one thread, best of {args.rounds} "
             f"interleaved round(s).", "",
             "| data | setting | batch | original ev/s | ours ev/s | ours / original |", "|---|---|---:|---:|---:|---:|"]
    for dataset in datasets:
        for setting in args.settings:
            for batch_size in args.batch_sizes:
                overrides = {"epochs": args.speed_epochs, "train_batch_size": batch_size}
                spec = _spec(args, dataset, setting, args.seeds[0], overrides, evaluate=False)
                best = {"original": 0.0, "ours": 0.0}
                for _ in range(args.rounds):
                    for kind in best:
                        result = run_worker(kind, spec)
                        best[kind] = max(best[kind], result["targets"] * len(result["epoch_seconds"]) / sum(result["epoch_seconds"]))
                ratio = best["ours"] / best["original"]
                print(f"{dataset['name']} {setting} batch {batch_size}: original {best['original']:,.0f} ev/s, "
                      f"ours {best['ours']:,.0f} ev/s ({ratio:.2f}x)", flush=True)
                lines.append(f"| {dataset['name']} | {setting} | {batch_size} | {best['original']:,.0f} | {best['ours']:,.0f} "
                             f"| {ratio:.2f}x |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", help="folder of a checkout of hidasib/GRU4Rec_PyTorch_Official")
    parser.add_argument("--part", choices=["all", "accuracy", "speed"], default="all")
    parser.add_argument("--datasets", nargs="+", default=["ml-small-sessions", "synthetic", "diginetica"])
    parser.add_argument("--speed-datasets", nargs="+", default=["ml-small-sessions", "synthetic"])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=10, help="training epochs of the accuracy runs (default 10)")
    parser.add_argument("--synthetic-events", type=int, default=200_000)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--speed-epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--transplant", action="store_true", help="also test the original's weights with RecBole's evaluator")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, spec = args.worker
        print(json.dumps((worker_original if kind == "original" else worker_ours)(json.loads(spec))))
        return
    if not args.original or not os.path.isfile(os.path.join(args.original, "gru4rec_pytorch.py")):
        sys.exit("error: --original must name a checkout of hidasib/GRU4Rec_PyTorch_Official (holding gru4rec_pytorch.py)")
    args.original = os.path.abspath(args.original)
    started = time.time()
    parts = []
    with tempfile.TemporaryDirectory() as work:
        names = set(args.datasets if args.part != "speed" else []) | set(args.speed_datasets if args.part != "accuracy" else [])
        built = {name: build_dataset(work, name, args.synthetic_events) for name in sorted(names)}
        if args.part in ("all", "accuracy"):
            parts.append(accuracy(args, [built[name] for name in args.datasets]))
        if args.part in ("all", "speed"):
            parts.append(speed(args, [built[name] for name in args.speed_datasets]))
    parts.append(f"({time.strftime('%Y-%m-%d %H:%M')}, {time.time() - started:.0f} s in all)")
    publish(f"original_{args.part}", "\n\n".join(parts))


if __name__ == "__main__":
    main()
