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

from ..breakdown import support_label
from .stats import holm, mean_and_interval, paired_wilcoxon


def _per_target(metric):
    """Which per-target value a metric is tested on: reciprocal rank for MRR, hit otherwise."""
    return "reciprocal_rank" if metric.lower().startswith("mrr") else "hit"


def _setting(point):
    return ", ".join(f"{k}={v}" for k, v in sorted(point.items()))


def choose_point(records, ranking, seeds):
    """The grid point with the best mean validation value of ``ranking`` over its finished records
    on ``seeds`` (the tune seeds: a point that also ran on other seeds gets no more votes); None
    when none has finished."""
    by_point = {}
    for record in records:
        if record and record["status"] == "done" and record["seed"] in seeds:
            by_point.setdefault(json.dumps(record["grid_point"], sort_keys=True), []).append(record)
    if not by_point:
        return None
    best = max(by_point, key=lambda point: np.mean([r["valid"].get(ranking, -np.inf) for r in by_point[point]]))
    return json.loads(best)


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
            point = choose_point(done, ranking, experiment.search_seeds(label))
            chosen = [r for r in done if r["grid_point"] == point] if point is not None else done
            row.update(seeds=len(chosen), setting=_setting(chosen[0]["grid_point"]), records=chosen,
                       valid_ranking=float(np.mean([r["valid"].get(ranking, np.nan) for r in chosen])))
            for metric in experiment.metrics:
                row[metric] = mean_and_interval([r["test"].get(metric.lower(), np.nan) for r in chosen])
            row["train_seconds"] = float(np.mean([r["train_seconds"] for r in chosen]))
            row["seconds_per_epoch"] = float(np.mean([r["seconds_per_epoch"] for r in chosen]))
            row["best_epoch"] = float(np.mean([r["best_epoch"] or 0 for r in chosen]))
            row["epochs_trained"] = float(np.mean([r["epochs_trained"] for r in chosen]))
            row["capped"] = sum(r.get("stopped_by") == "cap" for r in chosen)
            row["grid_points"] = len({json.dumps(r["grid_point"], sort_keys=True) for r in done})
            row["grid_size"] = _grid_size(entry)
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


def _protocol(records):
    """The evaluation protocol of a dataset's cells, in words (from their resolved eval_args)."""
    args = next((json.loads(r["config"]["eval_args"]) for r in records if "eval_args" in r.get("config", {})), None)
    if args is None:
        return "-"
    split = args.get("split") or {}
    mode = args.get("mode")
    mode = mode.get("test", mode) if isinstance(mode, dict) else mode
    candidates = "every item" if mode == "full" else f"sampled candidates ({mode})"
    files = next((r["config"].get("benchmark_filename") for r in records), "null")
    how = (f"the dataset's own split files ({', '.join(json.loads(files))})" if files not in (None, "null")
           else f"split {', '.join(f'{k} {v}' for k, v in split.items())}")
    order = {"TO": "time order", "RO": "random order"}.get(args.get("order"), args.get("order"))
    return f"{how}, {order}, grouped by {args.get('group_by')}, ranked against {candidates}"


def _p_text(p):
    """A p-value as the board prints it (two digits; below what a double holds, '< 1e-300')."""
    return "< 1e-300" if p < 1e-300 else f"{p:.2g}"


def _budget(experiment):
    settings, tune = experiment.settings, experiment.tune_seeds
    sizes = sorted({_grid_size(entry) for entry in experiment.models.values()})
    search = (f"searched on seed{'s' if len(tune) > 1 else ''} {', '.join(map(str, tune))}, the chosen point run on "
              f"every seed" if tune else "every point run on every seed")
    return (f"grids of {'/'.join(map(str, sizes))} points per model ({search}; chosen on validation "
            f"{experiment.ranking_metric}); seeds {', '.join(map(str, experiment.seeds))}; at most "
            f"{settings.get('epochs', 'RecBole default')} epochs, early stopping after "
            f"{settings.get('stopping_step', 'RecBole default')} evaluations without gain "
            f"(every {settings.get('eval_step', 1)} epoch{'s' if settings.get('eval_step', 1) != 1 else ''})")


def _grid_size(entry):
    size = 1
    for values in entry.get("grid", {}).values():
        size *= len(values)
    return size


def _machines_and_versions(records):
    machines = sorted({f"{m['cores']} cores ({m['cpu'] or 'unknown processor'}), {m['threads']} torch "
                       f"thread{'s' if m['threads'] != 1 else ''}" for m in (r.get("machine") for r in records) if m})
    versions = {}
    for record in records:
        versions[record.get("code_version") or "unknown"] = versions.get(record.get("code_version") or "unknown", 0) + 1
    return machines, versions


def markdown(experiment, board):
    done = [r for rows in board.values() for row in rows for r in row.get("records", [])]
    machines, versions = _machines_and_versions(done)
    lines = [f"# Leaderboard: {experiment.name}", "",
             f"Mean ± 95% interval over seeds {', '.join(map(str, experiment.seeds))} (Student t); the first metric "
             f"ranks; p: Wilcoxon signed-rank test against the best over the same test targets, Holm-corrected "
             f"('other targets': the model was evaluated on other targets, e.g. a general model on session files, "
             f"and is not tested); a grid's setting is chosen on validation. Epochs: the best epoch / epochs "
             f"trained (means over seeds); `cap`: a seed stopped at the epoch limit, not by early stopping.", "",
             f"- Budget: {_budget(experiment)}.",
             f"- Machine: {'; '.join(machines) or '-'}.",
             f"- Code: {', '.join(f'{v} ({n} cells shown)' for v, n in sorted(versions.items())) or '-'}.", ""]
    for dataset, rows in board.items():
        records = [r for row in rows for r in row.get("records", [])]
        default = " (the board's default: the experiment names no eval_args)" if dataset in experiment.default_protocol else ""
        lines += [f"## {dataset}", "", f"Protocol: {_protocol(records)}{default}.", "",
                  "| rank | model | setting | " + " | ".join(experiment.metrics)
                  + " | train s | s / epoch | epochs | grid | p vs best | seeds |",
                  "|---:|---|---|" + "---:|" * len(experiment.metrics) + "---:|---:|---:|---:|---:|---:|"]
        best = {m: max((r[m][0] for r in rows if r["seeds"]), default=None) for m in experiment.metrics}
        for rank, row in enumerate(rows, 1):
            if not row["seeds"]:
                why = f"failed: {row['errors'][0]}" if row["errors"] else "not run yet"
                lines.append(f"| - | {row['label']} | | " + " | ".join("-" for _ in experiment.metrics)
                             + f" | | | | | {why} | 0 |")
                continue
            metrics = " | ".join(_cell(row[m], bold=row[m][0] == best[m]) for m in experiment.metrics)
            p = "best" if row.get("best") else "other targets" if row.get("other_targets") else _p_text(row["p_vs_best"])
            grid = (f"{row['grid_points']} of {row['grid_size']} (search running)" if row["grid_points"] < row["grid_size"]
                    else f"{row['grid_size']}")
            epochs = f"{row['best_epoch'] + 1:.0f} / {row['epochs_trained']:.0f}" + (" `cap`" if row["capped"] else "")
            lines.append(f"| {rank} | {row['label']} | {row['setting']} | {metrics} | {row['train_seconds']:.1f} "
                         f"| {row['seconds_per_epoch']:.2f} | {epochs} | {grid} | {p} | {row['seeds']}"
                         + (f" ({row['failed']} failed: {row['errors'][0]})" if row["failed"] else "") + " |")
        lines.append("")
        lines += _breakdown_markdown(experiment, rows)
    return "\n".join(lines)


def _breakdown_markdown(experiment, rows):
    """The ranking metric per bin of target popularity (``breakdown: popularity``), one row per label."""
    with_bins = [row for row in rows if row["seeds"] and row.get("breakdown")]
    if not with_bins:
        return []
    bins = [(support, targets) for support, targets, _ in with_bins[0]["breakdown"]]
    lines = [f"{experiment.ranking_metric} by the target item's training support (bins of about equal count of test "
             f"targets; [low, high): a support from low to below high):", "",
             "| model | " + " | ".join(f"{support_label(support)} ({n})" for support, n in bins) + " |",
             "|---|" + "---:|" * len(bins)]
    for row in with_bins:
        if [(support, targets) for support, targets, _ in row["breakdown"]] != bins:
            lines.append(f"| {row['label']} | other targets |" + " |" * (len(bins) - 1))
            continue
        lines.append(f"| {row['label']} | " + " | ".join(_cell(value) for _, _, value in row["breakdown"]) + " |")
    return lines + [""]


def _rounded(value, digits):
    return "" if value is None or value == "" else round(float(value), digits)


def csv_text(experiment, board):
    """The board as CSV, rounded as the markdown shows it (4 decimals, seconds to 0.01, p to 2 digits)."""
    out = io.StringIO()
    writer = csv.writer(out)
    header = ["dataset", "rank", "label", "model", "setting", "seeds"]
    for metric in experiment.metrics:
        header += [metric, f"{metric} ci95"]
    writer.writerow(header + ["train_seconds", "seconds_per_epoch", "best_epoch", "epochs_trained", "capped_seeds",
                              "grid_points", "p_vs_best_holm", "failed"])
    for dataset, rows in board.items():
        for rank, row in enumerate(rows, 1):
            values = [dataset, rank if row["seeds"] else "", row["label"], row["model"], row.get("setting", ""),
                      row["seeds"]]
            for metric in experiment.metrics:
                mean, half = row.get(metric, (None, None))
                values += [_rounded(mean, 4), _rounded(half, 4)]
            p = row.get("p_vs_best")
            values += [_rounded(row.get("train_seconds"), 2), _rounded(row.get("seconds_per_epoch"), 2),
                       _rounded(row.get("best_epoch"), 2), _rounded(row.get("epochs_trained"), 2),
                       row.get("capped", ""), row.get("grid_points", ""), "" if p is None else _p_text(p), row["failed"]]
            writer.writerow(values)
    return out.getvalue()
