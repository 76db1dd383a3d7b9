"""GRU4RecPlus beside the original GRU4Rec (hidasib/GRU4Rec_PyTorch_Official), on the same files.

    git clone https://github.com/hidasib/GRU4Rec_PyTorch_Official /tmp/GRU4Rec_PyTorch_Official
    python bench/bench_original.py --original /tmp/GRU4Rec_PyTorch_Official            # accuracy and speed
    python bench/bench_original.py --original DIR --part speed --rounds 2               # speed only
    python bench/bench_original.py --original DIR --part speed --speed-datasets yoochoose-100k \
        --yoochoose session-rec/data/rsc15/prepared --variants fused compiled autograd  # the YooChoose 100k sample
    python bench/bench_original.py --original DIR --part accuracy --seeds 1 2 3         # accuracy only

The original is imported from DIR and run as it is (its own iterator, sampler, optimizer and
``evaluation.batch_eval``); nothing of it is copied here. Both train on the same training file
and are tested on the same test file, made by this package's GRU4Rec session protocol
(docs/algorithm.md §8) from: the real DIGINETICA sample and ml-latest-small ratings (user histories
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
import itertools
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
    if name == "yoochoose-100k":
        return _yoochoose_sample(), None
    sessions, items, times = zipf_sessions(n_events, n_events // 16, 5_000, transition_strength=0.5, seed=1)
    # one session a day (zipf_sessions' times): the last 4% of the days are the test set, as many validation
    return pd.DataFrame({"session_id": sessions, "item_id": items.astype(str), "timestamp": times.astype(np.float64)}), \
        (n_events // 16) * 0.04


YOOCHOOSE = {"folder": None}  # --yoochoose: the folder of rn5l/session-rec's data/rsc15/prepared/ files


def _yoochoose_sample():
    """(train, test) of the YooChoose 100k sample as the session importer reads them."""
    from recbole_gru4rec_plus.data import session_import

    if not YOOCHOOSE["folder"]:
        sys.exit("error: yoochoose-100k needs --yoochoose DIR, the folder of rn5l/session-rec's data/rsc15/prepared/ "
                 "(yoochoose-clicks-100k_train_full.txt and yoochoose-clicks-100k_test.txt)")
    return tuple(session_import.read_gru4rec_tsv(os.path.join(YOOCHOOSE["folder"], f"yoochoose-clicks-100k_{part}.txt"))
                 for part in ("train_full", "test"))


def build_dataset(work, name, n_events):
    """Import one source by the session protocol; write RecBole's files and the original's TSVs."""
    from recbole_gru4rec_plus.data import session_import

    events, test_days = _events(name, n_events)
    if isinstance(events, tuple):  # already split into train and test files: the last training day validates
        splits = session_import.apply_presplit_protocol(*events, valid_days=1)
    else:
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
    config, train_data, test_data, model, trainer = _our_pipeline(spec, threads=1)
    torch.set_num_threads(1)
    if spec.get("original_init"):
        _copy_original_initial_weights(spec, model, train_data.dataset)
    compile_seconds = _compile_first(model, trainer, train_data) if config["compile"] else None
    seconds = []
    for epoch in range(config["epochs"]):
        start = time.perf_counter()
        trainer._train_epoch(train_data, epoch)
        seconds.append(time.perf_counter() - start)
    result = {"epoch_seconds": seconds, "targets": int(train_data.sessions.n_targets), "compile_seconds": compile_seconds}
    if spec["evaluate"]:
        test = trainer.evaluate(test_data, load_best_model=False)
        result.update(recall=float(test["recall@20"]), mrr=float(test["mrr@20"]))
    return result


def _compile_first(model, trainer, train_data):
    """compile: True compiles at a run's first step: do it on a copy of the model's and optimizer's state,
    then put the state back, so the timed epochs start where an eager run starts. The compile seconds."""
    import copy

    state = copy.deepcopy((model.state_dict(), trainer.optimizer.state_dict(), model.sampler.state_dict()))
    model.train()
    model.reset_session_state()
    started = time.perf_counter()
    batch = next(iter(train_data))
    trainer.optimizer.zero_grad(set_to_none=True)
    model.train_step(batch, trainer.optimizer)
    seconds = time.perf_counter() - started
    model.load_state_dict(state[0])
    trainer.optimizer.load_state_dict(state[1])
    model.sampler.load_state_dict(state[2])
    return [seconds]


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
    if spec.get("fix_original_tail"):
        # the original passes the full batch size as the number of in-batch columns, also at the
        # epoch's tail where fewer slots are left: its log-Q then corrects some sampled columns
        # as in-batch ones. Diagnostic only: the number of rows is the number of in-batch columns.
        loss_function = gru.loss_function
        gru.loss_function = lambda scores, columns, n_in_batch: loss_function(scores, columns, len(scores))
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


def copy_original_weights(original, model, train_dataset, itemidmap):
    """The original's weights into a GRU4RecPlus, items matched by token: every GRU layer, the
    input embedding or the one-hot first layer, the output table and biases."""
    import torch

    tokens = train_dataset.field2id_token["item_id"][1:]  # our ids 1.. -> the item tokens
    index = torch.as_tensor(itemidmap[tokens].to_numpy(), dtype=torch.long)
    with torch.no_grad():
        model.item_embedding.weight[1:] = original.Wy.weight[index]
        model.item_bias.weight[1:] = original.By.weight[index]
        if getattr(original, "embedding", 0) and not original.constrained_embedding:
            model.input_embedding.weight[1:] = original.E.weight[index]
        if getattr(original, "start", 0):  # the one-hot first layer
            _copy_one_hot_layer(original.GE, model.one_hot_layer, index)
        for cell, layer in zip(original.G, model.gru_layers, strict=True):
            layer.input_weight.copy_(cell.weight_ih)
            layer.input_bias.copy_(cell.bias_ih)
            layer.hidden_weight.copy_(cell.weight_hh.t())
            layer.hidden_bias.copy_(cell.bias_hh)
    return index


def _copy_one_hot_layer(original, layer, index):
    """The original's one-hot layer keeps its gates as (candidate, reset, update) and writes
    h' = (1 - z) h + z n; ours keeps (reset, update, candidate) and writes h' = (1 - z) n + z h:
    the same layer with the update gate's inputs negated (sigmoid(-a) = 1 - sigmoid(a))."""
    size = layer.hidden_size
    candidate, reset, update = original.Wx0.weight.split(size, dim=1)
    layer.item_gates.weight[1:] = torch_cat_rows((reset, -update, candidate), index)
    b_candidate, b_reset, b_update = original.Bh0.split(size)
    layer.input_bias.copy_(torch_cat_rows((b_reset, -b_update, b_candidate)))
    w_reset, w_update = original.Wrz0.split(size, dim=1)
    layer.hidden_weight.copy_(torch_cat_rows((w_reset, -w_update, original.Wh0)))


def torch_cat_rows(blocks, index=None):
    """The blocks side by side (last dimension), rows ``index`` only if given."""
    import torch

    joined = torch.cat(blocks, dim=-1)
    return joined[index] if index is not None else joined


def _our_pipeline(spec, **extra):
    from recbole.utils import init_seed

    from recbole_gru4rec_plus.config import PluginConfig
    from recbole_gru4rec_plus.quick_start import create_dataset, data_preparation
    from recbole_gru4rec_plus.trainer import get_trainer_class

    dataset = spec["dataset"]
    options = {**spec["overrides"], "show_progress": False, "state": "WARNING", **extra}
    config = PluginConfig("GRU4RecPlus", dataset["name"], [dataset["yaml"], *SETTINGS[spec["setting"]]], options)
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, test_data = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data.dataset)
    return config, train_data, test_data, model, get_trainer_class(config.model_class)(config, model)


def _copy_original_initial_weights(spec, model, train_dataset):
    """Diagnostic: start from the original's initial weights (its compatibility mode draws them
    with numpy seed 42, the same for every seed), so that only the random streams differ."""
    import numpy as np
    import pandas as pd
    import torch

    sys.path.insert(0, spec["original"])
    from gru4rec_pytorch import GRU4RecModel, SessionDataIterator

    params = spec["params"]
    data = pd.read_csv(spec["dataset"]["train"], sep="\t", dtype={"SessionId": np.int64, "ItemId": str, "Time": np.float64})
    with contextlib.redirect_stdout(io.StringIO()):
        iterator = SessionDataIterator(data, params["batch_size"], device=torch.device("cpu"))
    original = GRU4RecModel(iterator.n_items, params["layers"], params["dropout_p_embed"], params["dropout_p_hidden"],
                            params["embedding"], params["constrained_embedding"])
    original._reset_weights_to_compatibility_mode()
    copy_original_weights(original, model, train_dataset, iterator.itemidmap)


def transplanted_metrics(spec, gru):
    """The original's trained weights in a GRU4RecPlus, tested with RecBole's evaluator: the same
    model under the other evaluator."""
    _, train_data, test_data, model, trainer = _our_pipeline(spec)
    copy_original_weights(gru.model, model, train_data.dataset, gru.data_iterator.itemidmap)
    test = trainer.evaluate(test_data, load_best_model=False)
    return {"transplant_recall": float(test["recall@20"]), "transplant_mrr": float(test["mrr@20"])}


def worker_lockstep(spec):
    """Both implementations stepped side by side in float64 from the same weights, with the same
    batches, samples and dropout masks: per step, the relative difference of the two losses."""
    import numpy as np
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, spec["original"])
    from gru4rec_pytorch import GRU4Rec, GRU4RecModel, IndexedAdagradM, SessionDataIterator  # the original, as it is

    params = spec["params"]
    data = pd.read_csv(spec["dataset"]["train"], sep="\t", dtype={"SessionId": np.int64, "ItemId": str, "Time": np.float64})
    gru = GRU4Rec(device=torch.device("cpu"), **params)
    with contextlib.redirect_stdout(io.StringIO()):
        iterator = SessionDataIterator(data, params["batch_size"], n_sample=params["n_sample"],
                                       sample_alpha=params["sample_alpha"], device=torch.device("cpu"))
    supports = data.groupby("ItemId").size()[iterator.itemidmap.index.values].to_numpy()
    gru.data_iterator, gru.P0 = iterator, torch.as_tensor(supports, dtype=torch.float64)  # as its fit() sets them
    torch.manual_seed(spec["seed"])
    # the original's own initialisation (reset_parameters); its numpy "compatibility mode" gives
    # transposed input weights when the input size differs from the layer size (embedding 64)
    original = GRU4RecModel(iterator.n_items, params["layers"], params["dropout_p_embed"], params["dropout_p_hidden"],
                            params["embedding"], params["constrained_embedding"])
    original = original.double()
    torch.set_default_dtype(torch.float64)
    original_optimizer = IndexedAdagradM(original.parameters(), params["learning_rate"], params["momentum"])
    states = [torch.zeros(params["batch_size"], size, dtype=torch.float64) for size in params["layers"]]
    reset = lambda n_valid, finished, valid: gru._adjust_hidden(n_valid, finished, valid, states)
    original_steps = iterator(enable_neg_samples=params["n_sample"] > 0, reset_hook=reset)

    _, train_data, _, model, trainer = _our_pipeline(spec)
    index = copy_original_weights(original, model, train_data.dataset, iterator.itemidmap)
    ours = torch.empty(iterator.n_items, dtype=torch.long)
    ours[index] = torch.arange(1, len(index) + 1)  # the original's item index -> ours
    original.train(), model.train(), model.reset_session_state()
    our_steps, differences, ended_together = iter(train_data), [], None
    for step in itertools.count():
        if spec["steps"] and step == spec["steps"]:
            break
        batch = next(our_steps, None)
        inputs, columns = next(original_steps, (None, None))
        if batch is None or inputs is None:  # the epoch's end: the same step for both, or a schedule that differs
            ended_together = batch is None and inputs is None
            break
        n_rows = len(inputs)
        if not (torch.equal(ours[inputs], batch.inputs) and torch.equal(ours[columns[:n_rows]], batch.targets)):
            raise RuntimeError(f"the two implementations' batches differ at step {step}")
        samples = ours[columns[n_rows:]]
        model.sampler.sample = lambda: samples
        torch.manual_seed(step)  # the same dropout masks
        for state in states:
            state.detach_()
        original.zero_grad()
        n_in_batch = n_rows if spec.get("fix_original_tail") else params["batch_size"]  # see worker_original
        loss = gru.loss_function(original.forward(inputs, states, columns, training=True), columns, n_in_batch)
        loss = loss / params["batch_size"]
        loss.backward()
        original_optimizer.step()
        torch.manual_seed(step)
        trainer.optimizer.zero_grad(set_to_none=True)
        if model.fused:  # the step the trainer takes (fused_step: True, the default)
            our_loss = model.train_step(batch, trainer.optimizer)
        else:
            our_loss = model.calculate_loss(batch)
            our_loss.backward()
            trainer.optimizer.step()
        differences.append(abs(our_loss.item() - loss.item()) / abs(loss.item()))
    return {"differences": differences, "ended_together": ended_together}


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
    if args.fix_original_tail:  # the original patched to correct only sampled columns as sampled: so is ours
        overrides["logq_tail"] = "exact"
    return {"dataset": dataset, "setting": setting, "seed": seed, "overrides": overrides, "evaluate": evaluate,
            "params": resolved_options(dataset, setting, overrides), "original": args.original,
            "transplant": args.transplant, "fix_original_tail": args.fix_original_tail, "original_init": args.original_init}


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


# GRU4RecPlus's variants in the speed part: label -> the options it runs with
VARIANTS = {"fused": {}, "compiled": {"compile": True}, "autograd": {"fused_step": False}}
_DEFAULTS = "defaults"


def speed(args, datasets):
    """Training events/s of the original and of GRU4RecPlus's variants, each run in its own process, interleaved:
    ``fused`` (the default step), ``compiled`` (compile: True; its one-off compile time apart: whole epochs are
    timed after it) and ``autograd`` (fused_step: False, the step before the fused one)."""
    kinds = ["original", *args.variants]
    lines = [f"Speed: training events/s over {args.speed_epochs} whole epoch(s), one thread, best of {args.rounds} "
             f"interleaved round(s); GRU4RecPlus as {', '.join(f'{v} ({VARIANTS[v] or _DEFAULTS})' for v in args.variants)}; "
             f"x: its events/s over the original's.", "",
             "| data | setting | batch | original ev/s | " + " | ".join(f"{v} ev/s (x)" for v in args.variants)
             + (" | compile s |" if "compiled" in args.variants else " |"),
             "|---|---|---:|---:|" + "---:|" * (len(args.variants) + ("compiled" in args.variants))]
    for dataset in datasets:
        for setting in args.settings:
            for batch_size in args.batch_sizes:
                overrides = {"epochs": args.speed_epochs, "train_batch_size": batch_size}
                spec = _spec(args, dataset, setting, args.seeds[0], overrides, evaluate=False)
                best, compile_seconds = dict.fromkeys(kinds, 0.0), []
                for _ in range(args.rounds):
                    for kind in kinds:
                        if kind == "original":
                            result = run_worker("original", spec)
                        else:
                            result = run_worker("ours", {**spec, "overrides": {**spec["overrides"], **VARIANTS[kind]}})
                        best[kind] = max(best[kind], result["targets"] * len(result["epoch_seconds"]) / sum(result["epoch_seconds"]))
                        compile_seconds += result.get("compile_seconds") or []
                ratio = {kind: best[kind] / best["original"] for kind in kinds}
                print(f"{dataset['name']} {setting} batch {batch_size}: " + ", ".join(
                    f"{kind} {best[kind]:,.0f} ev/s ({ratio[kind]:.2f}x)" for kind in kinds), flush=True)
                cells = [f"{best['original']:,.0f}"] + [f"{best[v]:,.0f} ({ratio[v]:.2f}x)" for v in args.variants]
                if "compiled" in args.variants:
                    cells.append(f"{min(compile_seconds):.0f}-{max(compile_seconds):.0f}" if compile_seconds else "")
                lines.append(f"| {dataset['name']} | {setting} | {batch_size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# the lockstep record's settings: (label, setting, overrides)
LOCKSTEP = [
    ("BPR-max defaults, 1 layer, constrained embedding", "defaults", {}),
    ("BPR-max defaults, 2 layers [100, 100]", "defaults", {"layers": [100, 100]}),
    ("BPR-max defaults, separate embedding 64", "defaults", {"constrained_embedding": False, "embedding": 64}),
    ("BPR-max defaults, one-hot input", "defaults", {"constrained_embedding": False, "embedding": 0}),
    ("RSC15 published (XE, log-Q, dropout 0.4, momentum 0.2)", "rsc15", {}),
    ("RSC15 published, 2 layers [100, 100]", "rsc15", {"layers": [100, 100]}),
    ("RSC15 published, separate embedding 64", "rsc15", {"constrained_embedding": False, "embedding": 64}),
    # control: at learning_rate 0.2 both trainings amplify rounding ~3x a step (logq, dropout and
    # momentum off each change nothing); at 0.05 the same setting stays at rounding level
    ("RSC15 published, learning_rate 0.05 (control)", "rsc15", {"learning_rate": 0.05}),
]


def _original_commit(folder):
    done = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def lockstep(args, datasets):
    steps = f"{args.lockstep_steps} steps" if args.lockstep_steps else "one whole epoch"
    lines = [f"Lockstep, float64, {steps} per setting: both implementations from the original's initial weights "
             f"(every layer copied), with the same batches, samples and dropout masks, GRU4RecPlus taking the step its "
             f"trainer takes (the fused step; autograd's for the one-hot and separate-embedding input layers' GRU); the relative difference of "
             f"the two step losses (rounding, ~1e-16, at first; with the RSC15 setting's learning rate of 0.2 it then grows "
             f"about 3x a step, as that training amplifies any float perturbation: the control at 0.05 stays near "
             f"rounding for the whole epoch). 'schedule': whether both epochs ended at the same step, the batches (inputs and "
             f"targets of every slot) having been equal at every step (the run stops at the first that is not)"
             + (", the original's tail log-Q patched" if args.fix_original_tail else "") + ".", "",
             "| data | setting | steps | schedule | max, steps 1-10 | max, steps 1-100 | max over the epoch | median |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    for dataset in datasets:
        for label, setting, overrides in LOCKSTEP:
            spec = {**_spec(args, dataset, setting, args.seeds[0], overrides, evaluate=False), "steps": args.lockstep_steps}
            result = run_worker("lockstep", spec)
            differences = result["differences"]
            schedule = {True: "identical", False: "DIFFERENT", None: "cut"}[result["ended_together"]]
            parts = [differences[:10], differences[:100], differences]
            lines.append(f"| {dataset['name']} | {label} | {len(differences)} | {schedule} | "
                         + " | ".join(f"{max(part):.1e}" if part else "-" for part in parts)
                         + f" | {statistics.median(differences):.1e} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


RECORD = os.path.join(ROOT, "docs", "lockstep.md")
TRANSPLANT_NOTE = ("The original trained as it is, then its weights copied into a GRU4RecPlus and tested with RecBole's "
                   "evaluator: the last column, against the original's own evaluator on the same weights (the "
                   "'original' columns). The 'ours' columns are a GRU4RecPlus trained on its own, with its own "
                   "random draws: with few epochs and one seed they differ from the original's by chance "
                   "(`--part accuracy` with 10 epochs and 3 seeds compares the two trainings).")


def write_record(args, section, text):
    """docs/lockstep.md: the original's commit, and one section per part that wrote it ('Lockstep',
    'Transplant'), each with the command that regenerates it; the other sections are kept."""
    commit = args.original_commit or _original_commit(args.original) or "unknown"
    sections = {}
    if os.path.isfile(RECORD):
        with open(RECORD, encoding="utf-8") as f:
            for part in f.read().split("\n## ")[1:]:
                title, _, body = part.partition("\n")
                sections[title.strip()] = body.strip()
    command = " ".join(["python bench/bench_original.py --original DIR", *sys.argv[1:]]).replace(args.original, "DIR")
    command = re.sub(r" --original-commit \S+", "", command).replace("--original DIR --original DIR", "--original DIR")
    sections[section] = (f"`{command}` ({time.strftime('%Y-%m-%d')}, hidasib/GRU4Rec_PyTorch_Official at commit "
                         f"`{commit}`, imported from a checkout and run as it is)\n\n{text}")
    page = "# GRU4RecPlus beside the original GRU4Rec\n\n" + "\n\n".join(
        f"## {title}\n\n{body}" for title, body in sections.items()) + "\n"
    with open(RECORD, "w", encoding="utf-8") as f:
        f.write(page)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", help="folder of a checkout of hidasib/GRU4Rec_PyTorch_Official")
    parser.add_argument("--part", choices=["all", "lockstep", "accuracy", "speed"], default="all")
    parser.add_argument("--lockstep-steps", type=int, default=0, help="lockstep steps per setting (0: one whole epoch)")
    parser.add_argument("--original-commit", help="the original checkout's commit, if it is not a git checkout")
    parser.add_argument("--datasets", nargs="+", default=["ml-small-sessions", "synthetic", "diginetica"])
    parser.add_argument("--speed-datasets", nargs="+", default=["ml-small-sessions", "synthetic"])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=10, help="training epochs of the accuracy runs (default 10)")
    parser.add_argument("--synthetic-events", type=int, default=200_000)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 64, 128])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["fused", "compiled"],
                        help="speed: GRU4RecPlus's steps to time beside the original (autograd: the step before fusing)")
    parser.add_argument("--yoochoose", help="folder of rn5l/session-rec's data/rsc15/prepared/ files (dataset yoochoose-100k)")
    parser.add_argument("--speed-epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--transplant", action="store_true", help="also test the original's weights with RecBole's evaluator")
    parser.add_argument("--fix-original-tail", action="store_true",
                        help="diagnostic: patch the original's log-Q at the epoch's tail (see worker_original), "
                             "and run GRU4RecPlus with logq_tail: exact")
    parser.add_argument("--original-init", action="store_true",
                        help="diagnostic: GRU4RecPlus starts from the original's initial weights (numpy seed 42)")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, spec = args.worker
        workers = {"original": worker_original, "ours": worker_ours, "lockstep": worker_lockstep}
        print(json.dumps(workers[kind](json.loads(spec))))
        return
    if not args.original or not os.path.isfile(os.path.join(args.original, "gru4rec_pytorch.py")):
        sys.exit("error: --original must name a checkout of hidasib/GRU4Rec_PyTorch_Official (holding gru4rec_pytorch.py)")
    args.original = os.path.abspath(args.original)
    YOOCHOOSE["folder"] = args.yoochoose
    started = time.time()
    parts = []
    with tempfile.TemporaryDirectory() as work:
        names = set(args.datasets if args.part != "speed" else []) | set(args.speed_datasets if args.part in ("all", "speed") else [])
        built = {name: build_dataset(work, name, args.synthetic_events) for name in sorted(names)}
        if args.part in ("all", "lockstep"):
            parts.append(lockstep(args, [built[name] for name in args.datasets]))
            if not args.lockstep_steps:  # the committed record holds whole epochs only
                write_record(args, "Lockstep", parts[-1])
        if args.part in ("all", "accuracy"):
            parts.append(accuracy(args, [built[name] for name in args.datasets]))
            if args.transplant:
                write_record(args, "Transplant", TRANSPLANT_NOTE + "\n\n" + parts[-1])
        if args.part in ("all", "speed"):
            parts.append(speed(args, [built[name] for name in args.speed_datasets]))
    parts.append(f"({time.strftime('%Y-%m-%d %H:%M')}, {time.time() - started:.0f} s in all)")
    publish(f"original_{args.part}", "\n\n".join(parts))


if __name__ == "__main__":
    main()
