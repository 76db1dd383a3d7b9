"""Benchmarks print their figures and keep a copy under bench/results/ (ignored by git)."""

import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def publish(name, text):
    """Print ``text`` and write it to bench/results/<name>.md."""
    print(text)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"{name}.md"), "w") as f:
        f.write(text + "\n")
