"""Benchmarks print their figures and keep a copy under bench/results/ (ignored by git)."""

import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def publish(name, text):
    """Print ``text`` and write it to bench/results/<name>.md."""
    print(text)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"{name}.md"), "w") as f:
        f.write(text + "\n")


def speed_and_accuracy(description, speed, accuracy, add_arguments=None, more_parts=None):
    """The command line of a benchmark in parts (``--part speed|accuracy|<more_parts' names>|all``,
    ``--rounds``, ``--epochs``, ``--threads`` and what ``add_arguments(parser)`` adds), then its
    parts, run in a temporary folder (RecBole writes log/ and saved/ into the working directory)."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=description)
    parts = {"speed": speed, "accuracy": accuracy, **(more_parts or {})}
    parser.add_argument("--part", choices=[*parts, "all"], default="all")
    parser.add_argument("--rounds", type=int, default=2, help="speed: runs per configuration, the fastest counts")
    parser.add_argument("--epochs", type=int, default=10, help="accuracy: training epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        for name, part in parts.items():
            if args.part in (name, "all"):
                part(args, folder)


def accuracy_row(labels, result, base, seconds, cutoff=20):
    """A table row: the labels, R@k and MRR@k of ``result``, each relative to ``base``, and the seconds."""
    recall, mrr = result[f"recall@{cutoff}"], result[f"mrr@{cutoff}"]
    return ("| " + " | ".join(map(str, labels)) + f" | {recall:.4f} | {mrr:.4f} | {recall / base[f'recall@{cutoff}'] - 1:+.1%} "
            f"| {mrr / base[f'mrr@{cutoff}'] - 1:+.1%} | {seconds:.0f} |")
