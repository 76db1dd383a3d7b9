"""The board as a picture: per dataset, the ranking metric against training time, one point per
model with its interval, so that quality and cost are seen at once."""

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def plot_board(experiment, board, path):
    datasets = [d for d, rows in board.items() if any(r["seeds"] for r in rows)]
    if not datasets:
        return None
    figure, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), squeeze=False)
    metric = experiment.ranking_metric
    for axis, dataset in zip(axes[0], datasets):
        rows = [r for r in board[dataset] if r["seeds"]]
        for row in rows:
            mean, half = row[metric]
            axis.errorbar(max(row["train_seconds"], 1e-3), mean, yerr=half or 0, fmt="o", capsize=4,
                          color="tab:red" if row.get("model", "").startswith("GRU4RecPlus") else "tab:blue")
            axis.annotate(row["label"], (max(row["train_seconds"], 1e-3), mean), textcoords="offset points",
                          xytext=(6, 4), fontsize=8)
        axis.set_xscale("log")
        axis.set_xlabel("training time per run (s, log scale)")
        axis.set_ylabel(f"test {metric} (mean ± 95% interval)")
        axis.set_title(dataset)
        axis.grid(alpha=0.3)
    figure.suptitle(f"{experiment.name}: quality and training cost")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
