"""SessionParallelDataset splits targets exactly like RecBole's prefix-augmented SequentialDataset."""

import numpy as np
import pytest
import torch
from recbole.data.dataset import SequentialDataset

from recbole_gru4rec_plus.config import PluginConfig
from recbole_gru4rec_plus.data.dataset import SessionParallelDataset, leave_one_out_counts, ratio_counts

class SessionParallelDatasetWithRecBoleTimes(SessionParallelDataset):
    """Times in float32 as RecBole stores them, so that ties in time order break the same way."""

    def _dataframe_to_interaction(self, data):
        interaction = super()._dataframe_to_interaction(data)
        if self.time_field in interaction.interaction:
            interaction.interaction[self.time_field] = interaction[self.time_field].float()
        return interaction


SMALL = {"show_progress": False, "state": "WARNING", "user_inter_num_interval": "[0,30)"}


def _both_builds(extra=None):
    config = PluginConfig("GRU4RecPlus", "ml-100k", None, {**SMALL, **(extra or {})})
    ours = SessionParallelDatasetWithRecBoleTimes(config).build()
    recbole = SequentialDataset(config).build()
    return config, ours, recbole


def _rows(dataset, fields):
    inter = dataset.inter_feat
    keys = [inter[f].numpy().reshape(len(inter), -1) for f in fields if len(inter)]
    return sorted(map(tuple, np.concatenate(keys, axis=1).tolist())) if keys else []


@pytest.mark.parametrize("split", [{"LS": "valid_and_test"}, {"LS": "valid_only"}, {"RS": [0.8, 0.1, 0.1]}])
def test_valid_and_test_rows_equal_recboles(in_tmp_dir, split):
    config, ours, recbole = _both_builds({"eval_args": {"split": split, "order": "TO", "mode": "full", "group_by": "user"}})
    fields = ["user_id", "item_id", "item_id_list", "item_length", "timestamp_list"]
    for our_part, recbole_part in zip(ours[1:], recbole[1:]):
        assert _rows(our_part, fields) == _rows(recbole_part, fields)


@pytest.mark.parametrize("split", [{"LS": "valid_and_test"}, {"RS": [0.8, 0.1, 0.1]}])
def test_training_targets_equal_recboles_training_rows_and_no_prefix_rows_are_built(in_tmp_dir, split):
    """Each training target as (user, item, position in the user's history) equals RecBole's
    training rows (item_length = the position: histories here are shorter than MAX_ITEM_LIST_LENGTH)."""
    config, ours, recbole = _both_builds({"eval_args": {"split": split, "order": "TO", "mode": "full", "group_by": "user"}})
    train = ours[0]
    assert "item_id_list" not in train.inter_feat  # raw events, not RecBole's 50-item prefix rows
    users, items = train.inter_feat["user_id"].numpy(), train.inter_feat["item_id"].numpy()
    sessions = train.training_sessions
    assert sessions.items.tolist() == items.tolist()  # one session per user history, in event order
    first = np.r_[True, users[1:] != users[:-1]]
    position = np.arange(len(users)) - np.maximum.accumulate(np.where(first, np.arange(len(users)), 0))
    ours_triples = sorted(zip(users[~first].tolist(), items[~first].tolist(), position[~first].tolist()))
    rows = recbole[0].inter_feat
    assert int(rows["item_length"].max()) < config["MAX_ITEM_LIST_LENGTH"]
    recbole_triples = sorted(zip(rows["user_id"].tolist(), rows["item_id"].tolist(), rows["item_length"].tolist()))
    assert ours_triples == recbole_triples


def test_session_gap_cuts_evaluation_histories_at_the_session_start(in_tmp_dir):
    config = PluginConfig("GRU4RecPlus", "ml-100k", None, {**SMALL, "session_gap": 3600})
    train, valid, test = SessionParallelDataset(config).build()
    whole = SessionParallelDataset(PluginConfig("GRU4RecPlus", "ml-100k", None, SMALL)).build()
    assert (test.inter_feat["item_length"] <= whole[2].inter_feat["item_length"]).all()
    assert (test.inter_feat["item_length"] < whole[2].inter_feat["item_length"]).any()
    times = test.inter_feat["timestamp_list"].numpy()
    lengths = test.inter_feat["item_length"].numpy()
    for row_times, length, target_time in zip(times, lengths, test.inter_feat["timestamp"].numpy()):
        history = np.r_[row_times[:length], target_time]
        assert (np.diff(history) <= 3600).all() or length == 0
    assert len(train.training_sessions.offsets) - 1 > len(np.unique(train.inter_feat["user_id"].numpy()))


def test_leave_one_out_counts_follow_recbole_for_short_histories():
    n_targets = np.array([1, 2, 3, 10])
    valid, test = leave_one_out_counts(n_targets, "valid_and_test")
    assert valid.tolist() == [0, 0, 1, 1] and test.tolist() == [0, 1, 1, 1]


def test_ratio_counts_follow_recbole_rounding():
    from recbole.data.dataset import Dataset

    n_targets = np.arange(1, 40)
    valid, test = ratio_counts(n_targets, [0.8, 0.1, 0.1])
    for n, v, t in zip(n_targets, valid, test):
        split_ids = Dataset._calcu_split_ids(None, n, [0.8, 0.1, 0.1])
        assert (v, t) == (split_ids[1] - split_ids[0], n - split_ids[1])


def test_times_keep_float64_precision(in_tmp_dir):
    config = PluginConfig("GRU4RecPlus", "ml-100k", None, SMALL)
    train, _, test = SessionParallelDataset(config).build()
    assert train.inter_feat["timestamp"].dtype == torch.float64
    assert test.inter_feat["timestamp_list"].dtype == torch.float64
    assert (train.inter_feat["timestamp"] % 1 == 0).all() and (train.inter_feat["timestamp"] % 64 != 0).any()
    assert set(train.inter_feat.interaction) == {"user_id", "item_id", "timestamp"}
    assert "rating_list" not in test.inter_feat.interaction  # fields no session-parallel model reads are dropped


def test_a_session_id_field_cuts_training_and_evaluation_at_session_starts(in_tmp_dir):
    from recbole_gru4rec_plus.data.synthetic import write_atomic_inter

    # two users; user 1 has sessions 10 (3 events) and 11 (4 events), user 2 session 12 (5 events)
    users = [1] * 7 + [2] * 5
    sessions = [10, 10, 10, 11, 11, 11, 11] + [12] * 5
    items = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    times = list(range(12))
    folder = in_tmp_dir / "sess"
    write_atomic_inter(str(in_tmp_dir), "sess", users, items, times)
    path = folder / "sess.inter"
    lines = path.read_text().splitlines()
    lines = [lines[0] + "\tsession_id:token"] + [f"{line}\t{s}" for line, s in zip(lines[1:], sessions)]
    path.write_text("\n".join(lines) + "\n")
    options = {**SMALL, "data_path": str(in_tmp_dir), "SESSION_ID_FIELD": "session_id",
               "load_col": {"inter": ["user_id", "item_id", "timestamp", "session_id"]}, "user_inter_num_interval": "[0,inf)"}
    train, valid, test = SessionParallelDataset(PluginConfig("GRU4RecPlus", "sess", None, options)).build()
    tokens = lambda ids: [int(t) for t in train.id2token("item_id", ids)]
    sessions = train.training_sessions
    assert sorted(tokens(sessions.items[a:b]) for a, b in zip(sessions.offsets[:-1], sessions.offsets[1:])) == [
        [1, 2, 3], [4, 5], [8, 9, 10]]
    # evaluation rows hold only the current session's items
    histories = {int(train.id2token("item_id", [t])[0]): tokens(row[:n]) for t, row, n in zip(
        test.inter_feat["item_id"].numpy(), test.inter_feat["item_id_list"].numpy(), test.inter_feat["item_length"].numpy())}
    assert histories == {7: [4, 5, 6], 12: [8, 9, 10, 11]}


def test_evaluation_batches_hold_a_bounded_number_of_scores(in_tmp_dir, monkeypatch):
    """A sequential model's full-sort batches: at most EVAL_SCORES scores (RecBole: eval_batch_size
    rows, whatever the items), and the same ranking metrics as one batch per 4096 rows."""
    from recbole_gru4rec_plus import quick_start
    from recbole_gru4rec_plus.config import PluginConfig
    from recbole_gru4rec_plus.trainer import get_trainer_class

    def test_result(scores):
        monkeypatch.setattr(quick_start, "EVAL_SCORES", scores)
        config = PluginConfig("GRU4RecPlus", "ml-100k", None, {"show_progress": False, "epochs": 1})
        dataset = quick_start.create_dataset(config)
        train, _, test = quick_start.data_preparation(config, dataset)
        torch.manual_seed(0)
        trainer = get_trainer_class(config.model_class)(config, config.model_class(config, train.dataset))
        return test.step, dataset.item_num, trainer.evaluate(test, load_best_model=False)

    rows, items, bounded = test_result(100_000)
    assert rows == 100_000 // items and rows * items <= 100_000
    rows, _, whole = test_result(1 << 40)
    assert rows == 4096 and bounded == whole
