"""The board: per dataset, one row per model label, from the cell records alone.

Each metric is the mean over seeds with its 95% interval; a label with a grid shows the setting
with the best mean *validation* value of the ranking metric (test results never choose
anything); the best label is the one with the highest mean test ranking metric, and every other
one gets a Wilcoxon signed-rank test against it over the same test targets (per-target values
averaged over seeds), Holm-corrected over the dataset's labels.
"""

import csv
import io
import json

import numpy as np

from .stats import holm, mean_and_interval, paired_wilcoxon


def _per_target(metric):
    """Which per-target value a metric is tested on: reciprocal rank for MRR, hit otherwise."""
    return "reciprocal_rank" if metric.lower().startswith("mrr") else "hit"


def _setting(point):
    return ", ".join(f"{k}={v}" for k, v in sorted(point.items()))


def _choose(records, ranking):
    """Among a label's grid points, the records of the one with the best mean validation value."""
    by_point = {}
    for record in records:
        by_point.setdefault(json.dumps(record["grid_point"], sort_keys=True), []).append(record)
    return max(by_point.values(), key=lambda group: np.mean([r["valid"].get(ranking, -np.inf) for r in group]))


def _target_means(records, field):
    """Per target key: the value averaged over the records (seeds) that have it."""
    sums, counts = {}, {}
    for record in records:
        targets = record.get("per_target") or {}
        for key, value in zip(targets.get("keys", []), targets.get(field, [])):
            sums[key] = sums.get(key, 0.0) + value
            counts[key] = counts.get(key, 0) + 1
    return {key: sums[key] / counts[key] for key in sums}


def _breakdown_means(records, ranking):
    """With ``breakdown: popularity`` in the cells: per bin of target popularity, (support range,
    targets, mean and interval of the ranking metric over the seeds); None without it."""
    parts = [r.get("breakdown") for r in records]
    if not all(parts) or any(ranking not in bins[0] for bins in parts):
        return None
    return [(tuple(bins[0]["support"]), bins[0]["targets"], mean_and_interval([b[ranking] for b in bins]))
            for bins in zip(*parts)]


def build_board(experiment, records):
    """{dataset: [row, ...]} ranked by the test ranking metric, best first."""
    ranking = experiment.ranking_metric.lower()
    field = _per_target(ranking)
    board = {}
    for dataset in experiment.datasets:
        rows = []
        for label, entry in experiment.models.items():
            done = [r for r in records if r["dataset"] == dataset and r["label"] == label and r["status"] == "done"]
            failed = [r for r in records if r["dataset"] == dataset and r["label"] == label and r["status"] == "failed"]
            row = {"dataset": dataset, "label": label, "model": entry.get("model", label), "failed": len(failed),
                   "errors": sorted({r["error"] for r in failed})}
            if not done:
                rows.append({**row, "seeds": 0})
                continue
            chosen = _choose(done, ranking) if entry.get("grid") else done
            row.update(seeds=len(chosen), setting=_setting(chosen[0]["grid_point"]), records=chosen,
                       valid_ranking=float(np.mean([r["valid"].get(ranking, np.nan) for r in chosen])))
            for metric in experiment.metrics:
                row[metric] = mean_and_interval([r["test"].get(metric.lower(), np.nan) for r in chosen])
            row["train_seconds"] = float(np.mean([r["train_seconds"] for r in chosen]))
            row["seconds_per_epoch"] = float(np.mean([r["seconds_per_epoch"] for r in chosen]))
            row["best_epoch"] = float(np.mean([r["best_epoch"] or 0 for r in chosen]))
            row["breakdown"] = _breakdown_means(chosen, ranking)
            rows.append(row)
        ranked = sorted([r for r in rows if r["seeds"]], key=lambda r: -r[experiment.ranking_metric][0])
        if ranked:
            best = ranked[0]
            best["best"], best["p_vs_best"] = True, None
            best_targets = _target_means(best["records"], field)
            compared, raw = [], []
            for row in ranked[1:]:
                targets = _target_means(row["records"], field)
                if set(targets) != set(best_targets):
                    # e.g. a general (non-sequential) RecBole model on session files ranks per user, not
                    # per next event: its metrics are of other targets, so no paired test is made
                    row["other_targets"] = True
                    continue
                keys = sorted(targets)
                row["paired_targets"] = len(keys)
                compared.append(row)
                raw.append(paired_wilcoxon([targets[k] for k in keys], [best_targets[k] for k in keys]) if keys else 1.0)
            for row, p in zip(compared, holm(raw) if raw else []):
                row["p_vs_best"] = p
            best["paired_targets"] = len(best_targets)
        board[dataset] = ranked + [r for r in rows if not r["seeds"]]
    return board


def _cell(value, bold=False):
    if value is None or (isinstance(value, tuple) and np.isnan(value[0])):
        return "-"
    mean, half = value
    text = f"{mean:.4f}" + (f" ± {half:.4f}" if half is not None else "")
    return f"**{text}**" if bold else text


def markdown(experiment, board):
    lines = [f"# Leaderboard: {experiment.name}", "",
             f"Mean ± 95% interval over seeds {', '.join(map(str, experiment.seeds))} (Student t); the first metric "
             f"ranks; p: Wilcoxon signed-rank test against the best over the same test targets, Holm-corrected "
             f"('other targets': the model was evaluated on other targets, e.g. a general model on session files, "
             f"and is not tested); a grid's setting is chosen on validation.", ""]
    for dataset, rows in board.items():
        lines += [f"## {dataset}", "",
                  "| rank | model | setting | " + " | ".join(experiment.metrics)
                  + " | train s | s / epoch | p vs best | seeds |",
                  "|---:|---|---|" + "---:|" * len(experiment.metrics) + "---:|---:|---:|---:|"]
        best = {m: max((r[m][0] for r in rows if r["seeds"]), default=None) for m in experiment.metrics}
        for rank, row in enumerate(rows, 1):
            if not row["seeds"]:
                why = f"failed: {row['errors'][0]}" if row["errors"] else "not run yet"
                lines.append(f"| - | {row['label']} | | " + " | ".join("-" for _ in experiment.metrics)
                             + f" | | | {why} | 0 |")
                continue
            metrics = " | ".join(_cell(row[m], bold=row[m][0] == best[m]) for m in experiment.metrics)
            p = "best" if row.get("best") else "other targets" if row.get("other_targets") else f"{row['p_vs_best']:.2g}"
            lines.append(f"| {rank} | {row['label']} | {row['setting']} | {metrics} | {row['train_seconds']:.1f} "
                         f"| {row['seconds_per_epoch']:.2f} | {p} | {row['seeds']} |")
        lines.append("")
        lines += _breakdown_markdown(experiment, rows)
    return "\n".join(lines)


def _breakdown_markdown(experiment, rows):
    """The ranking metric per bin of target popularity (``breakdown: popularity``), one row per label."""
    with_bins = [row for row in rows if row["seeds"] and row.get("breakdown")]
    if not with_bins:
        return []
    bins = [(support, targets) for support, targets, _ in with_bins[0]["breakdown"]]
    lines = [f"{experiment.ranking_metric} by the target item's training support (equal-count bins of test targets):", "",
             "| model | " + " | ".join(f"{low}-{high} ({n})" for (low, high), n in bins) + " |",
             "|---|" + "---:|" * len(bins)]
    for row in with_bins:
        if [(support, targets) for support, targets, _ in row["breakdown"]] != bins:
            lines.append(f"| {row['label']} | other targets |" + " |" * (len(bins) - 1))
            continue
        lines.append(f"| {row['label']} | " + " | ".join(_cell(value) for _, _, value in row["breakdown"]) + " |")
    return lines + [""]


def csv_text(experiment, board):
    out = io.StringIO()
    writer = csv.writer(out)
    header = ["dataset", "rank", "label", "model", "setting", "seeds"]
    for metric in experiment.metrics:
        header += [metric, f"{metric} ci95"]
    writer.writerow(header + ["train_seconds", "seconds_per_epoch", "best_epoch", "p_vs_best_holm", "failed"])
    for dataset, rows in board.items():
        for rank, row in enumerate(rows, 1):
            values = [dataset, rank if row["seeds"] else "", row["label"], row["model"], row.get("setting", ""),
                      row["seeds"]]
            for metric in experiment.metrics:
                mean, half = row.get(metric, (None, None))
                values += [mean if mean is not None else "", half if half is not None else ""]
            values += [row.get("train_seconds", ""), row.get("seconds_per_epoch", ""), row.get("best_epoch", ""),
                       "" if row.get("p_vs_best") is None else row["p_vs_best"], row["failed"]]
            writer.writerow(values)
    return out.getvalue()
