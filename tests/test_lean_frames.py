"""The lean filters and remapping keep exactly the rows, ids and order that RecBole's keep."""

import numpy as np
import pandas as pd
import pytest
from recbole.data.dataset import Dataset

from recbole_gru4rec_plus.config import PluginConfig
from recbole_gru4rec_plus.data.dataset import SessionParallelDataset
from recbole_gru4rec_plus.data.lean_frames import keep_rows

QUIET = {"show_progress": False, "state": "WARNING"}


class RecBoleProcessing(SessionParallelDataset):
    """The same dataset with RecBole's own filters and remapping (the reader stays ours: tokens as categoricals)."""

    _filter_nan_user_or_item = Dataset._filter_nan_user_or_item
    _filter_by_field_value = Dataset._filter_by_field_value
    _filter_inter_by_user_or_item = Dataset._filter_inter_by_user_or_item
    _filter_by_inter_num = Dataset._filter_by_inter_num
    _remap = Dataset._remap


def _frames(options, dataset="ml-100k"):
    config = PluginConfig("GRU4RecPlus", dataset, None, {**QUIET, **options})
    return SessionParallelDataset(config), RecBoleProcessing(config)


def _assert_same(ours, recbole):
    assert len(ours.inter_feat) < ours.unfiltered_rows  # the filters did drop rows
    pd.testing.assert_frame_equal(ours.inter_feat, recbole.inter_feat)
    assert ours.field2id_token.keys() == recbole.field2id_token.keys()
    for field, tokens in ours.field2id_token.items():
        assert tokens.tolist() == recbole.field2id_token[field].tolist()
        assert ours.field2token_id[field] == recbole.field2token_id[field]
    for name in ("user_feat", "item_feat"):
        if getattr(ours, name) is not None:
            pd.testing.assert_frame_equal(getattr(ours, name), getattr(recbole, name))


@pytest.fixture(autouse=True)
def _count_rows(monkeypatch):
    """Record the rows read, before any filter."""
    original = SessionParallelDataset._data_filtering

    def counting(self):
        self.unfiltered_rows = len(self.inter_feat)
        original(self)

    monkeypatch.setattr(SessionParallelDataset, "_data_filtering", counting)


@pytest.mark.parametrize("options", [
    {"user_inter_num_interval": "[10,200)", "item_inter_num_interval": "[5,300]"},  # k-core rounds, both ends
    {"user_inter_num_interval": "(20,inf)", "item_inter_num_interval": None},
    {"user_inter_num_interval": None, "item_inter_num_interval": "[0,50);[100,120]"},  # two intervals
    {"load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]}, "val_interval": {"rating": "[3,5]"},
     "user_inter_num_interval": "[5,inf)"},
    {"val_interval": {"user_id": [str(u) for u in range(1, 400)]}},  # a token field: its listed values
    {"load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "release_year"]},
     "user_inter_num_interval": "[30,inf)"},  # items in two tables remapped together, another token field
])
def test_filters_keep_recboles_rows(in_tmp_dir, options):
    _assert_same(*_frames(options))


def _holes(folder, user_hole, item_hole):
    """An atomic file with ids missing on the rows where ``user_hole(e)`` / ``item_hole(e)``."""
    folder.mkdir()
    rows = ["user_id:token\titem_id:token\ttimestamp:float"]
    rows += [f"{'' if user_hole(e) else e % 5}\t{'' if item_hole(e) else e % 13}\t{e}" for e in range(200)]
    (folder / f"{folder.name}.inter").write_text("\n".join(rows) + "\n")
    return {"data_path": str(folder.parent), "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "user_inter_num_interval": "[3,inf)", "item_inter_num_interval": "[9,inf)"}


def test_missing_ids_are_dropped_as_recbole_drops_them(in_tmp_dir):
    options = _holes(in_tmp_dir / "holes", lambda e: e % 7 == 3, lambda e: False)
    _assert_same(*_frames(options, "holes"))


def test_missing_ids_in_both_fields_drop_their_rows(in_tmp_dir):
    """RecBole fails here (IndexError: it looks the item field's labels up as positions)."""
    options = _holes(in_tmp_dir / "holes", lambda e: e % 7 == 3, lambda e: e % 11 == 4)
    options.update(user_inter_num_interval=None, item_inter_num_interval=None)
    config = PluginConfig("GRU4RecPlus", "holes", None, {**QUIET, **options})
    dataset = SessionParallelDataset(config)
    kept = [e for e in range(200) if e % 7 != 3 and e % 11 != 4]
    assert dataset.inter_feat["timestamp"].tolist() == kept
    with pytest.raises(IndexError):
        RecBoleProcessing(config)


def test_keep_rows_keeps_values_and_dtypes():
    frame = pd.DataFrame({"a": pd.Categorical(["x", "y", "x", "z"]), "b": np.arange(4.0)})
    kept = keep_rows(frame.copy(), np.array([True, False, True, True]))
    expected = frame.iloc[[0, 2, 3]].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, expected)
