"""The board as a picture, per dataset: the test ranking metric against training time, one point
per model with its interval, so that quality and cost are seen at once; and below it each model's
validation curve against its cumulative training time (every seed of the chosen setting), so that
a reader sees who converges how fast and where early stopping ended each run."""

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def plot_board(experiment, board, path):
    datasets = [d for d, rows in board.items() if any(r["seeds"] for r in rows)]
    if not datasets:
        return None
    figure, axes = plt.subplots(2, len(datasets), figsize=(7 * len(datasets), 9), squeeze=False)
    metric = experiment.ranking_metric
    colours = plt.get_cmap("tab10")
    for column, dataset in enumerate(datasets):
        rows = [r for r in board[dataset] if r["seeds"]]
        summary, curves = axes[0][column], axes[1][column]
        for index, row in enumerate(rows):
            colour = colours(index % 10)
            mean, half = row[metric]
            seconds = max(row["train_seconds"], 1e-3)
            summary.errorbar(seconds, mean, yerr=half or 0, fmt="o", capsize=4, color=colour)
            summary.annotate(row["label"], (seconds, mean), textcoords="offset points", xytext=(6, 4), fontsize=8)
            for seed, record in enumerate(row["records"]):
                curve = record.get("valid_curve") or []
                if curve:
                    curves.plot([max(point[1], 1e-3) for point in curve], [point[2] for point in curve], color=colour,
                                alpha=0.8, linewidth=1, label=row["label"] if seed == 0 else None)
        summary.set_xscale("log")
        summary.set_xlabel("training time per run (s, log scale)")
        summary.set_ylabel(f"test {metric} (mean ± 95% interval)")
        summary.set_title(dataset)
        summary.grid(alpha=0.3)
        curves.set_xscale("log")
        curves.set_xlabel("cumulative training time (s, log scale)")
        curves.set_ylabel(f"validation {metric} per evaluated epoch")
        curves.grid(alpha=0.3)
        if curves.lines:
            curves.legend(fontsize=7, loc="lower right")
    figure.suptitle(f"{experiment.name}: quality, training cost and convergence")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
