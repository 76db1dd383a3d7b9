"""breakdown: popularity: test metrics per equal-count bin of the target item's training support."""

import numpy as np
import pytest

from recbole_gru4rec_plus.breakdown import breakdown_table, popularity_breakdown
from recbole_gru4rec_plus.quick_start import run

from helpers import QUIET

SPLIT = {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"}  # one split for every model


def _run(model, **options):
    config = {**QUIET, "epochs": 1, "breakdown": "popularity", "breakdown_bins": 4, "valid_metric": "MRR@20",
              "eval_args": SPLIT, "user_inter_num_interval": "[0,60)", **options}
    return run(model, "ml-100k", None, config, saved=False)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("breakdown"))  # RecBole writes log/ and saved/ into the working directory
        yield {model: _run(model) for model in ("GRU4RecPlus", "Pop", "STAMP")}


@pytest.mark.parametrize("model", ["GRU4RecPlus", "Pop", "STAMP"])
def test_bins_do_not_overlap_and_their_weighted_mean_is_the_overall_metric_at_every_cutoff(results, model):
    rows, test = results[model]["breakdown"], results[model]["test_result"]
    sizes = [row["targets"] for row in rows]
    assert 2 <= len(rows) <= 4 and sum(sizes) == len(results[model]["per_target"]["keys"]) and min(sizes) > 0
    for k in (10, 20):  # topk: [10, 20]
        for metric in (f"mrr@{k}", f"recall@{k}"):
            weighted = sum(row[metric] * row["targets"] for row in rows) / sum(sizes)
            assert weighted == pytest.approx(test[metric], abs=1e-4)  # RecBole rounds to 4 decimals
    edges = [row["support"] for row in rows]
    assert all(low < high for low, high in edges) and all(a[1] == b[0] for a, b in zip(edges, edges[1:]))


def test_every_model_bins_the_same_targets_alike(results):
    """GRU4RecPlus (events), STAMP (RecBole's prefix rows) and Pop (a general model): one binning."""
    bins = {model: [(r["support"], r["targets"]) for r in result["breakdown"]] for model, result in results.items()}
    assert bins["GRU4RecPlus"] == bins["STAMP"] == bins["Pop"]
    # Pop ranks by popularity: its hits concentrate on the popular bins
    pop = results["Pop"]["breakdown"]
    assert pop[-1]["recall@20"] > pop[0]["recall@20"]


def test_a_support_value_is_never_split_between_bins_and_each_cutoff_is_counted_by_hand():
    # supports 5 (six targets) and 9 (four): three bins asked, the cut inside the 5s is dropped
    per_target = {"k": 20, "topk": [1, 3], "keys": [f"u{i}|x|0" for i in range(10)], "item_ids": [1] * 6 + [2] * 4,
                  "rank": [1, 2, 3, 0, 1, 4, 2, 0, 0, 1]}
    rows = popularity_breakdown(per_target, np.array([0, 5, 9]), 3)
    assert [(row["support"], row["targets"]) for row in rows] == [((5, 9), 6), ((9, 10), 4)]
    assert rows[0]["recall@1"] == pytest.approx(2 / 6) and rows[0]["recall@3"] == pytest.approx(4 / 6)
    assert rows[0]["mrr@3"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1) / 6)
    assert rows[1]["mrr@1"] == pytest.approx(1 / 4) and rows[1]["mrr@3"] == pytest.approx((1 / 2 + 1) / 4)
    assert breakdown_table(rows).splitlines()[2].startswith("| [5, 9) | 6 |")


class _Tokens:
    """The little of a RecBole dataset that PerTargetRanks reads."""
    uid_field, iid_field, config = "user_id", "item_id", {"topk": [3]}  # lists of 3, metrics at k = 2
    field2id_token = {"user_id": np.array(["[PAD]", "941", "9"]), "item_id": np.array(["[PAD]", "1", "2", "3"])}

    def id2token(self, field, ids):
        return self.field2id_token[field][ids]


def test_a_batch_with_one_target_is_keyed_by_its_whole_user_token():
    """numpy reads a one-element tensor as a scalar index: the key must still be '941|1|0', not '9|1|0'."""
    import torch

    from recbole_gru4rec_plus.trainer import PerTargetRanks

    ranks = PerTargetRanks(_Tokens(), k=2)
    scores = torch.tensor([[-float("inf"), 0.5, 0.9, 0.1]])
    ranks.add(scores, {"user_id": torch.tensor([1])}, torch.tensor([0]), torch.tensor([1]))
    ranks.add(scores.repeat(2, 1), {"user_id": torch.tensor([2, 1])}, torch.tensor([0, 1]), torch.tensor([3, 2]))
    result = ranks.as_dict()
    assert result["keys"] == ["941|1|0", "9|3|0", "941|2|0"]
    assert result["reciprocal_rank"] == [0.5, 0.0, 1.0] and result["hit"] == [1, 0, 1]
    assert result["rank"] == [2, 3, 1] and result["topk"] == [3]  # within the list of 3, beyond k = 2
