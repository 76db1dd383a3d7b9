"""Test metrics per bin of the target item's popularity (``breakdown: popularity``), for any model.

A target's popularity is its item's support in the training part: the item's events in the
dataset as loaded (before RecBole's sequential datasets turn them into prefix rows), less its
validation and test targets, so every model of a dataset bins the same targets the same way. The
test targets are cut into at most ``breakdown_bins`` bins of about equal count at support values
(a support value is never split between two bins, so the ranges [low, high) do not overlap, and
bins whose cut would fall inside one value are merged); each bin reports its support range, its
number of targets, and MRR@k and Recall@k at every cutoff k of ``topk``: the means of the
per-target ranks of ``trainer.PerTargetRanks`` (read off the evaluator's own top-k lists), so the
bins' mean weighted by their sizes is RecBole's overall metric, ties and all.
"""

import numpy as np


def item_events(dataset):
    """Each item's events in a dataset as loaded: call it before ``data_preparation``, which
    replaces a RecBole sequential dataset's events by prefix rows."""
    items = dataset.inter_feat[dataset.iid_field]
    items = items.to_numpy() if hasattr(items, "to_numpy") else items.numpy()  # a DataFrame until built
    return np.bincount(items.astype(np.int64), minlength=dataset.item_num)


def training_supports(events, valid_data, test_data):
    """Each item's training support: its events (``item_events``) less its validation and test targets."""
    supports = events.copy()
    for part in (valid_data, test_data):
        field = part.dataset.iid_field
        supports -= np.bincount(part.dataset.inter_feat[field].numpy(), minlength=len(supports))
    return np.maximum(supports, 0)


def popularity_breakdown(per_target, supports, bins):
    """Rows ({support: [low, high), targets, mrr@k, recall@k for every k}) per bin of the targets' support."""
    support = supports[np.asarray(per_target["item_ids"], dtype=np.int64)]
    ranks = np.asarray(per_target["rank"])
    ordered = np.sort(support)
    cuts = np.unique([ordered[(i * len(ordered)) // bins] for i in range(1, min(bins, len(ordered)))])
    cuts = cuts[cuts > ordered[0]] if len(ordered) else cuts
    bin_of = np.searchsorted(cuts, support, side="right")
    edges = [int(ordered[0]) if len(ordered) else 0, *map(int, cuts), int(ordered[-1]) + 1 if len(ordered) else 1]
    rows = []
    for index in range(len(edges) - 1):
        part = ranks[bin_of == index]
        row = {"support": (edges[index], edges[index + 1]), "targets": int(len(part))}
        for k in per_target["topk"]:
            listed = (part > 0) & (part <= k)
            row[f"mrr@{k}"] = float(np.where(listed, 1.0 / np.maximum(part, 1), 0.0).mean())
            row[f"recall@{k}"] = float(listed.mean())
        rows.append(row)
    return rows


def support_label(support):
    """A bin's half-open range of training support, e.g. '[42, 87)'."""
    low, high = support
    return f"[{low}, {high})"


def breakdown_table(rows):
    """The breakdown as a Markdown table."""
    metrics = [key for key in rows[0] if "@" in key]
    lines = ["| training support | targets | " + " | ".join(metrics) + " |", "|---|---:|" + "---:|" * len(metrics)]
    for row in rows:
        lines.append(f"| {support_label(row['support'])} | {row['targets']} | "
                     + " | ".join(f"{row[m]:.4f}" for m in metrics) + " |")
    return "\n".join(lines)
