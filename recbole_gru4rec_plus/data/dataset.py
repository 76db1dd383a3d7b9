"""RecBole's sequential dataset without prefix augmentation of the training part.

RecBole's ``SequentialDataset`` turns every event into a row holding up to
``MAX_ITEM_LIST_LENGTH`` previous items, for training, validation and test alike: O(events ×
history) memory and time. Session-parallel training needs only the training events in order.
``SessionParallelDataset`` therefore splits *targets* exactly as RecBole splits its prefix rows
(leave-one-out or ratio split per user, time order), keeps the training events as they are,
and builds RecBole's list-field rows only for the validation and test targets, so that those go
through RecBole's unchanged full-sort evaluator.
"""

import numpy as np
import torch
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import FeatureType

from ..errors import PluginError
from .dwell import dwell_copies, repeat_events
from .lean_frames import FastLoadMixin, LeanProcessingMixin
from .session_parallel import TrainingSessions, index_dtype
from .sessions import first_event_of_session, session_starts

SESSION_START_LIST = "session_start_list"  # benchmark rows and HRNN's evaluation rows: True where a history entry starts a session


def leave_one_out_counts(n_targets, mode):
    """Per user, how many of its last targets go to validation and to test (RecBole's 'LS' split)."""
    n_eval = {"valid_and_test": 2, "valid_only": 1, "test_only": 1}.get(mode)
    if n_eval is None:
        raise PluginError(f"eval_args split LS: '{mode}' is not one of valid_and_test, valid_only, test_only")
    n_held = np.clip(n_targets - 1, 0, n_eval)  # RecBole keeps at least one target for training
    if mode == "valid_and_test":  # a user with a single held-out target gives it to test
        return (n_held == 2).astype(np.int64), np.minimum(n_held, 1)
    if mode == "valid_only":
        return n_held, np.zeros_like(n_held)
    return np.zeros_like(n_held), n_held


def ratio_counts(n_targets, ratios):
    """Per user, how many of its last targets go to validation and to test (RecBole's 'RS' split by user)."""
    if len(ratios) != 3:
        raise PluginError(f"eval_args split RS needs three ratios [train, valid, test], got {ratios}")
    ratios = np.asarray(ratios, dtype=np.float64) / sum(ratios)
    counts = [None] + [np.floor(r * n_targets).astype(np.int64) for r in ratios[1:]]
    counts[0] = n_targets - counts[1] - counts[2]
    # RecBole's rounding (Dataset._calcu_split_ids): small parts that rounded to 0 get one target
    for part in (2, 1):
        bump = (counts[0] > 1) & (ratios[part] * n_targets > 0) & (ratios[part] * n_targets < 1)
        counts[part] = counts[part] + bump
        counts[0] = counts[0] - bump
    return counts[1], counts[2]


class CountsMixin:
    """RecBole's dataset summary with counts named for what they are: RecBole's user_num and
    item_num include its padding id 0 (944 'users' for ml-100k's 943), and a session file's
    'users' are sessions."""

    def __str__(self):
        lines = super().__str__().splitlines()
        kind = "sessions" if self.uid_field == "session_id" else "users"
        counts = []
        if self.uid_field:
            counts.append(f"{self.user_num - 1} {kind}")
        if self.iid_field:
            counts.append(f"{self.item_num - 1} items")
        counts.append(f"{self.inter_num} interaction rows")
        replaced = ("The number of users", "The number of items", "The number of inters")
        kept = [line for line in lines[1:] if not any(name in line for name in replaced)]
        return "\n".join([lines[0], ", ".join(counts) + " (RecBole's ids add a padding id 0 to users and items)", *kept])


class ExactTimesMixin:
    """RecBole stores float fields as float32, which resolves Unix times only to 128 s: events
    that far apart tie, and its stable sort then orders them as the file does, not by time. Every
    dataset of a run (plugin and built-in models alike) keeps the time field (and its history list
    in benchmark files) in float64, so that all models split histories into the same targets, and
    session gaps and dwell times are exact."""

    def _dataframe_to_interaction(self, data):
        interaction = super()._dataframe_to_interaction(data)
        time_list_field = f"{self.time_field}{self.config['LIST_SUFFIX']}"
        if self.time_field in data:
            # a copy: a view would pin the whole float block of the DataFrame in memory
            interaction.interaction[self.time_field] = torch.from_numpy(data[self.time_field].to_numpy(np.float64, copy=True))
        if time_list_field in data:
            lists = [torch.as_tensor(np.asarray(v, dtype=np.float64)) for v in data[time_list_field].values]
            interaction.interaction[time_list_field] = torch.nn.utils.rnn.pad_sequence(lists, batch_first=True)
        return interaction


class HistoryRowsMixin:
    """RecBole's prefix rows for chosen target events, built from the events with array operations."""

    def _history_first(self, targets, starts):
        """Each target's first history event: the start of its session, within MAX_ITEM_LIST_LENGTH."""
        return np.maximum(first_event_of_session(starts)[targets], targets - self.max_item_list_len)

    def _history_positions(self, targets, starts):
        """Event index of each history entry (0 past the history) and where the history is, for ``targets``."""
        max_len = self.max_item_list_len
        first = self._history_first(targets, starts)
        length = targets - first
        positions = first[:, None] + np.arange(max_len)[None, :]
        in_history = np.arange(max_len)[None, :] < length[:, None]
        return np.where(in_history, positions, 0), in_history, length

    def _history_rows(self, targets, starts):
        """RecBole's prefix rows (target event + list fields of the events before it) for ``targets``.

        The history is the events from ``_history_first`` to the target; ``starts``: the session starts of all events.
        """
        positions, in_history, length = self._history_positions(targets, starts)
        positions, in_history = torch.from_numpy(positions), torch.from_numpy(in_history)
        target_index = torch.from_numpy(targets)
        rows = {k: v[target_index] for k, v in self.inter_feat.interaction.items()}
        for field, values in self.inter_feat.interaction.items():
            if field == self.uid_field:
                continue
            history = values[positions]
            mask = in_history.view(in_history.shape + (1,) * (history.dim() - 2))
            rows[getattr(self, f"{field}_list_field")] = torch.where(mask, history, torch.zeros_like(history))
        rows[self.item_list_length_field] = torch.from_numpy(length)
        return Interaction(rows)



class EventFilesMixin(FastLoadMixin):
    """Benchmark files of plain events (``run/import_sessions.py --layout events``): the three
    files hold every event of their sessions and no list fields; every event after a session's
    first is a target whose history is its session's earlier events. ``event_files`` says
    whether a dataset has them; the rows a model needs are built from the events."""

    @property
    def event_files(self):
        return self.benchmark_filename_list is not None and not getattr(self, "_has_list_files", True)

    def _load_inter_feat(self, token, dataset_path):
        super()._load_inter_feat(token, dataset_path)
        # (RecBole's concat of the files turns their categoricals into object columns of references
        # to the same strings: 8 bytes a row, factorized once by RecBole's remap)
        self._has_list_files = any(ftype in (FeatureType.TOKEN_SEQ, FeatureType.FLOAT_SEQ)
                                   for field, ftype in self.field2type.items() if field in self.inter_feat)

    def _benchmark_presets(self):
        if self.event_files:
            self._aug_presets()  # the list fields exist only once rows are built
        else:
            super()._benchmark_presets()

    def _event_file_targets(self):
        """(session starts of all events, the target events of each file)."""
        bounds = np.cumsum([0] + list(self.file_size_list))
        starts = session_starts(self.inter_feat[self.uid_field].numpy())
        starts[bounds[:-1][bounds[:-1] < len(starts)]] = True  # a file begins a session
        targets = [np.flatnonzero(~starts[a:b]) + a for a, b in zip(bounds[:-1], bounds[1:])]
        return starts, targets


class EventFileRowsMixin(HistoryRowsMixin, EventFilesMixin):
    """RecBole's built-in models on event files: rows for every file's targets, as the prefix
    layout stores them (RecBole's own cost: rows x MAX_ITEM_LIST_LENGTH per list field)."""

    def _change_feat_format(self):
        super()._change_feat_format()
        if not self.event_files:
            return
        starts, targets = self._event_file_targets()
        parts = [self._history_rows(rows, starts) for rows in targets]
        self.inter_feat = Interaction({field: torch.cat([part[field] for part in parts]) for field in parts[0].interaction})
        self.file_size_list = [len(rows) for rows in targets]


class SessionParallelDataset(EventFilesMixin, LeanProcessingMixin, HistoryRowsMixin, ExactTimesMixin, SequentialDataset):
    """Training events for session-parallel batches; RecBole rows for validation and test only."""

    def _check_field(self, *field_names):
        for name in field_names:
            field = getattr(self, name, None)
            if field is None or field not in self.inter_feat:
                key = {"uid_field": "USER_ID_FIELD", "time_field": "TIME_FIELD"}.get(name, name)
                raise PluginError(
                    f"session-parallel training needs the {key} field '{field}' in the interactions: "
                    f"set {key} and list it under load_col: inter: in the dataset YAML"
                )

    def data_augmentation(self):
        """Declare RecBole's list fields; rows are built in ``build`` for evaluation targets only."""
        self._aug_presets()

    def _eval_split_counts(self, n_targets):
        eval_args = self.config["eval_args"]
        if eval_args["order"] != "TO":
            raise PluginError("session-parallel training needs eval_args order: TO (time order)")
        split = eval_args["split"]
        if "LS" in split:
            return leave_one_out_counts(n_targets, split["LS"])
        if "RS" in split and eval_args["group_by"] == "user":
            return ratio_counts(n_targets, split["RS"])
        raise PluginError(
            f"GRU4RecPlus supports eval_args split LS or RS with group_by: user, got split {split} "
            f"and group_by {eval_args['group_by']}"
        )

    def _sessions(self):
        session_field = self.config["SESSION_ID_FIELD"]
        return session_starts(
            self.inter_feat[self.uid_field].numpy(),
            timestamps=self.inter_feat[self.time_field].numpy() if self.time_field in self.inter_feat else None,
            session_ids=self.inter_feat[session_field].numpy() if session_field else None,
            session_gap=self.config["session_gap"],
        )

    def build(self):
        """[train, valid, test]. From whole user histories, the dataset's own events are cut down to
        the training events (as RecBole's sequential ``build`` replaces them by prefix rows)."""
        self._change_feat_format()
        if self.benchmark_filename_list is None:
            events, starts, valid, test = self._split_histories()
        else:
            events, starts, valid, test = self._split_benchmark_files()
        sessions = self._training_sessions(events, starts)
        # the training part keeps its events' users, items and times (item supports, dwell and
        # inspection read them), not the other fields; its ids in int32 where they fit (memory)
        _narrow_ids(events, [field for field in (self.uid_field, self.iid_field) if field in events.interaction])
        kept = [field for field in (self.uid_field, self.iid_field, self.time_field) if field in events.interaction]
        train = self.copy(Interaction({field: events[field] for field in kept}))
        train.training_sessions = sessions
        return [train, self.copy(valid), self.copy(test)]

    def _drop_unused_col(self):
        """RecBole's ``unused_col``, and every interaction field that session-parallel models
        never read (e.g. ratings, once filtering used them): they would be copied into the
        training events and padded into every evaluation row's history."""
        super()._drop_unused_col()
        needed = {self.uid_field, self.iid_field, self.time_field, self.config["SESSION_ID_FIELD"], SESSION_START_LIST,
                  self.item_list_length_field}
        suffix = self.config["LIST_SUFFIX"]
        for field in list(self.inter_feat.interaction):
            if field not in needed and field.removesuffix(suffix) not in needed:
                del self.inter_feat.interaction[field]

    def _split_histories(self):
        """Training events and their session starts, and valid/test rows, from whole user histories."""
        self._check_field("uid_field", "time_field")
        order = np.lexsort((self.inter_feat[self.time_field].numpy(), self.inter_feat[self.uid_field].numpy()))
        _take_in_place(self.inter_feat, order.astype(index_dtype(len(order))))
        del order
        users = self.inter_feat[self.uid_field].numpy()

        user_bounds = np.append(np.flatnonzero(np.r_[True, users[1:] != users[:-1]]), len(users))
        del users  # a view: it would keep the sorted user column alive through the cut below
        user_first, user_size = user_bounds[:-1], np.diff(user_bounds)
        n_valid, n_test = self._eval_split_counts(user_size - 1)
        n_train_targets = user_size - 1 - n_valid - n_test
        # a user's targets are its events 1..n-1; training takes the first ones, then valid, then test
        valid_targets = _last_targets(user_first + user_size, n_valid + n_test, n_valid)
        test_targets = _last_targets(user_first + user_size, n_test, n_test)

        starts = self._sessions()
        # training events: all but the held-out targets, of users with at least one training target
        in_train = np.repeat(n_train_targets > 0, user_size)
        in_train[valid_targets] = in_train[test_targets] = False

        self._drop_unused_col()
        valid = self._history_rows(valid_targets, starts)
        test = self._history_rows(test_targets, starts)
        # the dataset's events become its training events, as RecBole's data_augmentation replaces
        # them by prefix rows: no second copy of 25M events beside the first (memory)
        _take_in_place(self.inter_feat, in_train)
        return self.inter_feat, starts[in_train], valid, test

    def _split_event_files(self):
        """Event files: the training file's events as they are, rows for the other files' targets."""
        self._drop_unused_col()
        starts, (_, valid, test) = self._event_file_targets()
        n_train = self.file_size_list[0]
        valid_rows, test_rows = self._history_rows(valid, starts), self._history_rows(test, starts)
        train = Interaction({field: values[:n_train] for field, values in self.inter_feat.interaction.items()})  # views
        return train, starts[:n_train], valid_rows, test_rows

    def _split_benchmark_files(self):
        """Pre-split prefix rows (e.g. from run/import_sessions.py): training sessions are rebuilt
        from the training rows (grouped by SESSION_ID_FIELD if set, else by user) as the first
        row's last history item (the session's first event) followed by every row's target."""
        if self.event_files:
            return self._split_event_files()
        self._drop_unused_col()
        bounds = np.cumsum([0] + list(self.file_size_list))
        train, valid, test = (_take(self.inter_feat, np.arange(a, b)) for a, b in zip(bounds[:-1], bounds[1:]))
        users = train[self.uid_field].numpy()
        sessions = train[self.config["SESSION_ID_FIELD"]].numpy() if self.config["SESSION_ID_FIELD"] else users
        first_row = np.r_[True, sessions[1:] != sessions[:-1]]
        last_entry = train[self.item_list_length_field][first_row].numpy() - 1
        # event index of each row's target: shifted by the first items inserted before it
        target_position = np.arange(len(sessions)) + np.cumsum(first_row)
        first_position = target_position[first_row] - 1
        n_events = len(sessions) + int(first_row.sum())
        first_items = train[self.item_id_list_field][first_row].numpy()[np.arange(len(last_entry)), last_entry]
        fields = {self.uid_field: users, self.iid_field: train[self.iid_field].numpy()}
        first_values = {self.uid_field: users[first_row], self.iid_field: first_items}
        if self.time_field in train:
            fields[self.time_field] = train[self.time_field].numpy()
            time_list = getattr(self, f"{self.time_field}_list_field", None)
            first_times = (train[time_list][first_row].numpy()[np.arange(len(last_entry)), last_entry]
                           if time_list in train else train[self.time_field][first_row].numpy())
            first_values[self.time_field] = first_times
        events = {}
        for field, values in fields.items():
            column = np.empty(n_events, dtype=values.dtype)
            column[target_position], column[first_position] = values, first_values[field]
            events[field] = torch.from_numpy(column)
        starts = np.zeros(n_events, dtype=bool)
        starts[first_position] = True
        return Interaction(events), starts, self._benchmark_history(valid), self._benchmark_history(test)

    def _benchmark_history(self, rows):
        """Evaluation rows of benchmark files whose histories span a user's sessions (with
        ``session_start_list``): cut at the current session's start, which is all that
        GRU4RecPlus reads (docs/algorithm.md §6)."""
        if SESSION_START_LIST not in rows:
            return rows
        flags = rows[SESSION_START_LIST].numpy() > 0
        length = rows[self.item_list_length_field].numpy()
        in_history = np.arange(flags.shape[1])[None, :] < length[:, None]
        last_start = np.where(flags & in_history, np.arange(flags.shape[1])[None, :], 0).max(axis=1)
        return _shift_lists(rows, self, last_start)

    def _training_sessions(self, events, starts):
        """Session-parallel input (with the users' boundaries, for user-parallel steps), with
        dwell-time slicing of the training events when configured."""
        items = events[self.iid_field].numpy()
        times = events[self.time_field].numpy() if self.time_field in events else None  # sessions in start-time order
        users = events[self.uid_field].numpy()
        threshold = self.config["dwell_threshold"]
        if threshold is not None:
            if times is None:
                raise PluginError("dwell_threshold needs event times: set TIME_FIELD and load it (load_col: inter:)")
            copies = dwell_copies(times, starts, threshold, self.config["dwell_max_copies"])
            (items, times, users), starts = repeat_events((items, times, users), starts, copies)
            self.logger.info(
                f"dwell-time slicing (threshold {threshold}s, at most {self.config['dwell_max_copies']} copies): "
                f"{len(copies)} training events -> {len(items)} (+{len(items) / max(len(copies), 1) - 1:.1%})"
            )
        user_starts = np.r_[True, users[1:] != users[:-1]] if len(users) else np.zeros(0, dtype=bool)
        return TrainingSessions.from_events(items, starts, times, user_starts=user_starts)

def _shift_lists(rows, dataset, first):
    """``rows`` with each row's list fields starting at entry ``first`` of that row (moved to the front)."""
    length = rows[dataset.item_list_length_field].numpy() - first
    width = rows[dataset.item_id_list_field].shape[1]
    positions = first[:, None] + np.arange(width)[None, :]
    keep = np.arange(width)[None, :] < length[:, None]
    index = torch.from_numpy(np.where(keep, positions, 0))
    keep = torch.from_numpy(keep)
    shifted = dict(rows.interaction)
    for field, values in rows.interaction.items():
        if values.dim() >= 2 and values.shape[1] == width and field != dataset.uid_field:
            gathered = values.gather(1, index.view(index.shape + (1,) * (values.dim() - 2)).expand_as(values))
            mask = keep.view(keep.shape + (1,) * (values.dim() - 2))
            shifted[field] = torch.where(mask, gathered, torch.zeros_like(gathered))
    shifted[dataset.item_list_length_field] = torch.from_numpy(length).to(rows[dataset.item_list_length_field].dtype)
    return Interaction(shifted)


def _take(interaction, index):
    """Rows ``index`` of an Interaction (RecBole's own indexing goes through Python lists)."""
    index = torch.as_tensor(index)
    return Interaction({field: values[index] for field, values in interaction.interaction.items()})


def _take_in_place(interaction, index):
    """Keep rows ``index`` (a permutation or a subset, int32 or int64, or a boolean mask) of an
    Interaction column by column, so that only one column is ever copied at a time. NumPy's
    indexing: it takes int32 indices and a mask as they are (torch turns either into an int64
    index, a column's worth of memory)."""
    for field in list(interaction.interaction):
        interaction.interaction[field] = torch.from_numpy(interaction.interaction[field].numpy()[index])


def _narrow_ids(interaction, fields):
    """Id columns of an Interaction in int32 where their ids fit, in place (RecBole's int64 is
    twice the memory: 0.2 GB a column at 25M events)."""
    for field in fields:
        ids = interaction.interaction[field]
        if ids.dtype == torch.int64 and index_dtype(int(ids.max()) if len(ids) else 0) == np.int32:
            interaction.interaction[field] = ids.to(torch.int32)


def _last_targets(user_end, n_from_end, n_take):
    """Event indices: for each user, ``n_take`` targets starting ``n_from_end`` events before its end."""
    user = np.repeat(np.arange(len(user_end)), n_take)
    within = np.arange(len(user)) - np.repeat(np.cumsum(n_take) - n_take, n_take)
    return (user_end - n_from_end)[user] + within
