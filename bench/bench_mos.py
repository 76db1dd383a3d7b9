"""The Mixture-of-Softmaxes head: cost per training step and per full-sort prediction for
K = 1, 2, 4, 8 heads, and accuracy of K = 1 vs K = 4, one thread, ratios within one run.

    python bench/bench_mos.py                           # all parts
    python bench/bench_mos.py --part speed --events 100000 --rounds 2
    python bench/bench_mos.py --part accuracy --epochs 10
    python bench/bench_mos.py --part rook --boards 6x8 7x9 8x10 --seeds 2020 1 2 3 --plugin-options '{"learning_rate": 0.2}'

speed: GRU4RecPlus with cross-entropy on synthetic Zipf sessions (~5k items), layers [64],
batch 64, sampled (n_sample 2048) and full-softmax (n_sample -1) training; ms per training step
(one epoch, the fastest of ``--rounds``) and ms per 1,000 full-sort predictions (all items
ranked, the validation rows), each against K = 1 (the plain head) in the same run.

accuracy: R@20 and MRR@20 (RecBole's leave-one-out split, final model) with full-softmax
cross-entropy, K = 1 vs K = 4, on the real ml-latest-small ratings (layers [64]) and, with a
small and a large hidden size, on walks of two known Markov chains, where KL(truth ‖ model)
shows how well each head represents the next-item distribution: a rook's walk (``rook_moves``,
the softmax bottleneck's "row or column") and a sparse random chain (``random_successors``).

rook: the plugin's mixture against an independent one (``independent_mixture``: a bigram MoS,
Adam, its rate chosen on validation) on rook's walks of rectangular boards, head size
max(rows, columns) + 1: each one's MRR@20 gain over its own plain head (means over ``--seeds``,
and per seed), and the share of the independent gain that the plugin's mixture gets.
"""

import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from report import accuracy_row, publish, speed_and_accuracy  # noqa: E402

QUIET = {"show_progress": False, "state": "WARNING", "loss": "cross-entropy"}
LOAD = {"load_col": {"inter": ["user_id", "item_id", "timestamp"]}}


def _head(heads):
    return {"head": "softmax"} if heads == 1 else {"head": "mos", "mos_heads": heads}


def speed(args, folder):
    import torch
    from recbole.utils import init_logger, init_seed

    from recbole_gru4rec_plus.config import PluginConfig
    from recbole_gru4rec_plus.data.synthetic import write_atomic_inter, zipf_sessions
    from recbole_gru4rec_plus.quick_start import create_dataset, data_preparation
    from recbole_gru4rec_plus.trainer import get_trainer_class

    write_atomic_inter(folder, "zipf", *zipf_sessions(args.events, args.events // 16, 5_000))
    lines = [f"{args.events:,} synthetic events (~5k items), GRU4RecPlus, cross-entropy, layers [64], batch 64, "
             f"{args.threads} thread(s), best of {args.rounds} round(s), {time.strftime('%Y-%m-%d %H:%M')}", "",
             "| training | heads K | ms / step | vs K = 1 | ms / 1k full-sort rows | vs K = 1 |",
             "|---|---:|---:|---:|---:|---:|"]
    for title, n_sample in (("sampled, n_sample 2048", 2048), ("full softmax, n_sample -1", -1)):
        built = []
        for heads in args.heads:
            config = PluginConfig("GRU4RecPlus", "zipf", None, {**QUIET, **LOAD, **_head(heads), "data_path": folder,
                                                                "n_sample": n_sample, "layers": [64], "train_batch_size": 64})
            init_seed(config["seed"], True)
            init_logger(config)
            train_data, valid_data, _ = data_preparation(config, create_dataset(config))
            model = config.model_class(config, train_data.dataset)
            built.append((heads, train_data, valid_data, model, get_trainer_class(config.model_class)(config, model)))
        torch.set_num_threads(args.threads)
        step, predict = {}, {}
        for _ in range(args.rounds):  # alternate: every K sees the same machine load
            for heads, train_data, valid_data, model, trainer in built:
                start = time.perf_counter()
                trainer._train_epoch(train_data, 0)
                step[heads] = min(step.get(heads, float("inf")), (time.perf_counter() - start) / len(train_data))
                model.eval()
                rows, start = 0, time.perf_counter()
                with torch.no_grad():
                    for interaction, *_ in valid_data:
                        model.full_sort_predict(interaction)
                        rows += len(interaction)
                predict[heads] = min(predict.get(heads, float("inf")), (time.perf_counter() - start) / rows)
        for heads, *_ in built:
            lines.append(f"| {title} | {heads} | {1e3 * step[heads]:.2f} | {step[heads] / step[1]:.2f}x "
                         f"| {1e6 * predict[heads]:.1f} | {predict[heads] / predict[1]:.2f}x |")
            print(lines[-1], flush=True)
    publish("mos_speed", "\n".join(lines))


def _ml_latest_small(folder):
    shutil.copytree(os.path.join(ROOT, "tests", "data", "ml-latest-small"), os.path.join(folder, "ml-latest-small"))
    return "ml-latest-small", {"data_path": folder}


def _chain_run(folder, name, transitions, options):
    """Train on walks of a known Markov chain (RecBole's leave-one-out split, final model); the
    test result with KL(truth ‖ model) of the test rows added as ``kl``."""
    from recbole.utils import init_logger, init_seed

    from recbole_gru4rec_plus.config import PluginConfig
    from recbole_gru4rec_plus.data.synthetic import markov_kl, markov_sessions, write_atomic_inter
    from recbole_gru4rec_plus.quick_start import create_dataset, data_preparation
    from recbole_gru4rec_plus.trainer import get_trainer_class

    write_atomic_inter(folder, name, *markov_sessions(transitions, 10_000, session_length=10))
    config = PluginConfig("GRU4RecPlus", name, None, {**options, **LOAD, "data_path": folder})
    init_seed(config["seed"], True)
    init_logger(config)
    train_data, _, test_data = data_preparation(config, create_dataset(config))
    model = config.model_class(config, train_data.dataset)
    trainer = get_trainer_class(config.model_class)(config, model)
    for epoch in range(config["epochs"]):
        trainer._train_epoch(train_data, epoch)
    result = dict(trainer.evaluate(test_data, load_best_model=False, show_progress=False))
    return {**result, "kl": markov_kl(model, test_data, transitions)}


def accuracy(args, folder):
    from recbole_gru4rec_plus.data.synthetic import random_successors, rook_moves
    from recbole_gru4rec_plus.quick_start import run

    def real(config):
        return run("GRU4RecPlus", movielens, None, {**config, **movielens_options}, saved=False)["test_result"]

    def chain(name, transitions):
        return lambda config: _chain_run(folder, name, transitions,
                                         {**config, "constrained_embedding": False, "learning_rate": 0.2})

    movielens, movielens_options = _ml_latest_small(folder)
    rook = chain("rook", rook_moves(8))
    successors = chain("successors", random_successors(300, 5))
    cases = [("ml-latest-small (real)", [64], real),
             ("rook's walk, 8 x 8 board (64 items)", [8], rook), ("rook's walk, 8 x 8 board (64 items)", [64], rook),
             ("sparse random chain, 300 items x 5 successors", [8], successors),
             ("sparse random chain, 300 items x 5 successors", [64], successors)]
    lines = [f"leave-one-out, full-softmax cross-entropy (n_sample -1), batch 64, {args.epochs} epochs, final model, "
             f"{args.threads} thread(s), {time.strftime('%Y-%m-%d %H:%M')}; synthetic chains: 10,000 walks of 10 "
             "items, one-hot input, learning rate 0.2, KL(truth ‖ model) on the test rows", "",
             "| data | layers | heads K | R@20 | MRR@20 | R@20 vs K = 1 | MRR@20 vs K = 1 | train s | KL |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for title, layers, train in cases:
        base = None
        for heads in (1, 4):
            config = {**QUIET, **_head(heads), "n_sample": -1, "layers": layers, "train_batch_size": 64,
                      "epochs": args.epochs, "threads": args.threads, "topk": [20], "valid_metric": "MRR@20"}
            start = time.perf_counter()
            result = train(config)
            seconds = time.perf_counter() - start
            base = base or result
            kl = f" {result['kl']:.3f} |" if "kl" in result else " |"
            lines.append(accuracy_row((title, layers, heads), result, base, seconds) + kl)
            print(lines[-1], flush=True)
    publish("mos_accuracy", "\n".join(lines))


def _walks(transitions, n_walks=10_000, length=10):
    """The walks ``_chain_run`` trains on, as (walks × length) item ids (1-based)."""
    from recbole_gru4rec_plus.data.synthetic import markov_sessions

    return markov_sessions(transitions, n_walks, session_length=length)[1].reshape(n_walks, length)


def _ranking(log_probs, targets, cutoff=20):
    """MRR@cutoff and Recall@cutoff of ``targets`` under full ranking (item 0, padding, excluded)."""
    import torch

    log_probs[:, 0] = -float("inf")
    rank = (log_probs > log_probs.gather(1, targets[:, None])).sum(1) + 1
    hit = rank <= cutoff
    return {f"mrr@{cutoff}": float(torch.where(hit, 1.0 / rank, 0.0).mean()), f"recall@{cutoff}": float(hit.float().mean())}


def independent_mixture(walks, hidden, heads, epochs, learning_rates=(0.003, 0.01, 0.03), batch=64, seed=0):
    """An independent Mixture of Softmaxes (Yang et al., 2018) beside the plugin's: the next item
    from the current one alone (a bigram model: embedding h of the current item; K = 1: softmax
    of h·W + b; K > 1: sum_k pi_k(h) softmax(tanh(P_k h)·W + b)), full softmax, Adam, batches of
    ``batch`` pairs. The same leave-one-out split as the plugin's runs: each walk's last item is
    the test target, the one before it validation, the rest training; the learning rate is
    chosen on validation. Returns the test figures of the chosen rate and the rate."""
    import torch
    import torch.nn.functional as F

    walks = torch.as_tensor(walks)
    n_items = int(walks.max()) + 1
    inputs, targets = walks[:, :-3].reshape(-1), walks[:, 1:-2].reshape(-1)
    best = None
    for rate in learning_rates:
        torch.manual_seed(seed)
        embedding, output = torch.nn.Embedding(n_items, hidden), torch.nn.Linear(hidden, n_items)
        projection, prior = torch.nn.Linear(hidden, heads * hidden), torch.nn.Linear(hidden, heads)
        modules = [embedding, output] + ([projection, prior] if heads > 1 else [])

        def log_probs(items):
            state = embedding(items)
            if heads == 1:
                return F.log_softmax(output(state), -1)
            head_states = torch.tanh(projection(state)).view(len(items), heads, hidden)
            return torch.logsumexp(F.log_softmax(prior(state), -1)[:, :, None] + F.log_softmax(output(head_states), -1), 1)

        optimizer = torch.optim.Adam([p for m in modules for p in m.parameters()], lr=rate)
        shuffle = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            for pairs in torch.randperm(len(inputs), generator=shuffle).split(batch):
                loss = F.nll_loss(log_probs(inputs[pairs]), targets[pairs])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            valid = _ranking(log_probs(walks[:, -3]), walks[:, -2])
            test = _ranking(log_probs(walks[:, -2]), walks[:, -1])
        if best is None or valid["mrr@20"] > best[0]["mrr@20"]:
            best = (valid, test, rate)
    return best[1], best[2]


def _mean(values):
    return sum(values) / len(values)


def rook(args, folder):
    """The plugin's mixture against the independent one on rook's walks of several board shapes,
    at a head size just above max(rows, columns) (below rows + columns): how much of the
    independent mixture's MRR@20 gain over its plain softmax the plugin's gets over its own, both
    as means over ``--seeds`` (a single seed's gain moves by several points either way)."""
    import json

    from recbole_gru4rec_plus.data.synthetic import rook_moves

    extra = json.loads(args.plugin_options)
    lines = [f"rook's walks: 10,000 walks of 10 squares, leave-one-out, {args.epochs} epochs, K = {args.mos_heads} vs "
             f"the plain head, means over seeds {', '.join(map(str, args.seeds))}; independent: bigram MoS, Adam (rate "
             f"chosen on validation per seed); plugin: GRU4RecPlus, cross-entropy, n_sample -1, final model, options "
             f"{extra or 'the defaults'}; {args.threads} thread(s), {time.strftime('%Y-%m-%d %H:%M')}", "",
             "| board | head size | model | plain MRR@20 | MoS MRR@20 | MoS gain | gain per seed | plugin's gain / independent's |",
             "|---|---:|---|---:|---:|---:|---|---:|"]
    for board in args.boards:
        rows, columns = map(int, board.split("x"))
        transitions, hidden = rook_moves(rows, columns), max(rows, columns) + 1
        walks = _walks(transitions)
        runs = {"independent": [], "GRU4RecPlus": []}  # per seed: (plain MRR@20, MoS MRR@20)
        rates = set()
        for seed in args.seeds:
            pair = [independent_mixture(walks, hidden, heads, args.epochs, seed=seed) for heads in (1, args.mos_heads)]
            rates.update(rate for _, rate in pair)
            runs["independent"].append(tuple(result["mrr@20"] for result, _ in pair))
            runs["GRU4RecPlus"].append(tuple(
                _chain_run(folder, f"rook{rows}x{columns}", transitions,
                           {**QUIET, **_head(heads), "n_sample": -1, "layers": [hidden], "epochs": args.epochs,
                            "threads": args.threads, "topk": [20], "valid_metric": "MRR@20", "seed": seed,
                            **extra})["mrr@20"] for heads in (1, args.mos_heads)))
        gains = {}
        for name, pairs in runs.items():
            plain, mos = _mean([p for p, _ in pairs]), _mean([m for _, m in pairs])
            gains[name] = mos / plain - 1
            per_seed = " ".join(f"{m / p - 1:+.1%}" for p, m in pairs)
            label = f"independent (Adam {'/'.join(map(str, sorted(rates)))})" if name == "independent" else name
            share = f"{gains[name] / gains['independent']:.0%}" if name != "independent" else ""
            lines.append(f"| {rows} x {columns} | {hidden} | {label} | {plain:.4f} | {mos:.4f} | {gains[name]:+.1%} "
                         f"| {per_seed} | {share} |")
            print(lines[-1], flush=True)
    publish("mos_rook", "\n".join(lines))


def _arguments(parser):
    parser.add_argument("--events", type=int, default=100_000, help="synthetic events for the speed part")
    parser.add_argument("--heads", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--boards", nargs="+", default=["6x8", "7x9", "8x10"], help="rook: board shapes, rows x columns")
    parser.add_argument("--mos-heads", type=int, default=4, help="rook: the mixture's heads")
    parser.add_argument("--plugin-options", default="{}", help="rook: GRU4RecPlus options for both heads, as JSON")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 1, 2, 3],
                        help="rook: seeds of both implementations (2020 is RecBole's default)")


if __name__ == "__main__":
    speed_and_accuracy(__doc__.splitlines()[0], speed, accuracy, _arguments, {"rook": rook})
