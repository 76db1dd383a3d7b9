"""Test metrics per bin of the target item's popularity (``breakdown: popularity``), for any model.

A target's popularity is its item's support in the training part: the item's events in the
dataset as loaded (before RecBole's sequential datasets turn them into prefix rows), less its
validation and test targets, so every model of a dataset bins the same targets the same way. The
test targets, ordered by that support (then by their user, item and occurrence keys, so ties split the same way
for every model), are cut into ``breakdown_bins`` bins of equal count (sizes differ by at most
one); each bin reports its support range, its number of targets, MRR@k and Recall@k, the means of
the per-target values of ``trainer.PerTargetRanks`` (read off the evaluator's own top-k lists), so
the bins' mean weighted by their sizes is RecBole's overall metric, ties and all.
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
    """Rows (support range, targets, MRR@k, Recall@k) per equal-count bin of the targets' support."""
    support = supports[np.asarray(per_target["item_ids"], dtype=np.int64)]
    order = np.lexsort((np.asarray(per_target["keys"]), support))
    k, reciprocal_rank, hit = per_target["k"], np.asarray(per_target["reciprocal_rank"]), np.asarray(per_target["hit"])
    rows = []
    for part in np.array_split(order, min(bins, len(order))):
        rows.append({"support": (int(support[part].min()), int(support[part].max())), "targets": len(part),
                     f"mrr@{k}": float(reciprocal_rank[part].mean()), f"recall@{k}": float(hit[part].mean())})
    return rows


def breakdown_table(rows):
    """The breakdown as a Markdown table."""
    metrics = [key for key in rows[0] if "@" in key]
    lines = ["| training support | targets | " + " | ".join(metrics) + " |", "|---|---:|" + "---:|" * len(metrics)]
    for row in rows:
        low, high = row["support"]
        lines.append(f"| {low}-{high} | {row['targets']} | " + " | ".join(f"{row[m]:.4f}" for m in metrics) + " |")
    return "\n".join(lines)
