"""HRNN's data: users' histories cut into sessions (docs/algorithm.md §5-§6).

Training is user-parallel (each slot walks one user's sessions in order, see
``session_parallel``); the training sessions carry their users' boundaries. Evaluation rows
hold the user's earlier sessions as well as the current session's events, with a flag on each
history entry that starts a session, so that the model warms its user state up on the earlier
sessions exactly as stepping them in training would. The history window holds at most
MAX_ITEM_LIST_LENGTH events; it begins at a session start, so that each earlier session in it is
whole (unless the current session alone is longer than the window).
"""

import numpy as np
import torch

from ..errors import PluginError
from .dataset import SESSION_START_LIST, SessionParallelDataset, _shift_lists
from .sessions import first_event_of_session


class UserSessionDataset(SessionParallelDataset):
    """SessionParallelDataset whose evaluation histories span a user's sessions."""

    def build(self):
        if self.benchmark_filename_list is not None and SESSION_START_LIST not in self.inter_feat:
            raise PluginError(
                f"HRNN needs users with several sessions, but dataset '{self.dataset_name}' is a set of session "
                f"benchmark files (one session per user): import user sessions with run/import_sessions.py "
                f"--format user-sessions, or use atomic files with a user field and session_gap or SESSION_ID_FIELD"
            )
        built = super().build()
        sessions = built[0].training_sessions
        if not len(sessions.user_offsets) or np.diff(sessions.user_offsets).max(initial=0) < 2:
            raise PluginError(
                f"HRNN needs users with several sessions, but every user of dataset '{self.dataset_name}' has at most "
                f"one training session: set session_gap (seconds, e.g. 3600) or SESSION_ID_FIELD, or use GRU4RecPlus"
            )
        return built

    def _history_first(self, targets, starts):
        users = self.inter_feat[self.uid_field].numpy()
        user_first = first_event_of_session(np.r_[True, users[1:] != users[:-1]])[targets]
        first = np.maximum(user_first, targets - self.max_item_list_len)
        session_first = first_event_of_session(starts)[targets]
        start_index = np.flatnonzero(starts)
        next_start = start_index[np.minimum(np.searchsorted(start_index, first), len(start_index) - 1)]
        # move into the window's first whole session, unless that would cut into the current session
        return np.where(session_first >= first, np.minimum(next_start, session_first), first)

    def _benchmark_history(self, rows):
        """Benchmark rows keep the user's earlier sessions: from the first session start in the
        row (an earlier session cut by the file's history length is dropped), flags as booleans."""
        if SESSION_START_LIST not in rows:
            return rows
        flags = rows[SESSION_START_LIST].numpy() > 0
        length = rows[self.item_list_length_field].numpy()
        in_history = np.arange(flags.shape[1])[None, :] < length[:, None]
        first_start = np.where(flags & in_history, np.arange(flags.shape[1])[None, :], flags.shape[1]).min(axis=1)
        rows = _shift_lists(rows, self, np.where(first_start < length, first_start, 0))
        flags = rows[SESSION_START_LIST] > 0
        flags[:, 0] = rows[self.item_list_length_field] > 0
        rows.interaction[SESSION_START_LIST] = flags
        return rows

    def _history_rows(self, targets, starts):
        rows = super()._history_rows(targets, starts)
        positions, in_history, _ = self._history_positions(targets, starts)
        flags = starts[positions] & in_history
        flags[:, 0] = in_history[:, 0]  # the window's first entry starts the history (and a session)
        rows.interaction[SESSION_START_LIST] = torch.from_numpy(flags)
        return rows
