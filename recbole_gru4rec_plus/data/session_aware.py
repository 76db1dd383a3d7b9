"""User-session logs in, RecBole benchmark files out: the session-aware protocol of HRNN's paper
(Quadrana et al., RecSys 2017; docs/algorithm.md §8).

A reader turns a tab-separated ``UserId SessionId ItemId Time`` log (SessionId optional: sessions
then end after ``session_gap`` idle seconds) into a frame with the columns ``user_id``,
``session_id`` (unique over users), ``item_id`` and ``timestamp``. The protocol filters items,
sessions and users to a fixed point, then makes each user's last session the test session and
the one before it the validation session. ``user_prefix_rows`` writes one row per target (every
event after the first of a session) holding the user's whole history before it (up to
``max_history`` events, earlier sessions included) and a flag on each history entry that starts a
session: RecBole's built-in models read the whole history, GRU4RecPlus cuts it at the current
session's start, HRNN warms its user state up on the earlier sessions.
"""

import numpy as np
import pandas as pd

from ..errors import PluginError
from .session_import import SPLITS, Layout, _check_not_empty, _check_tokens, _numeric, _read_csv, collapse_repeats, tokens_of
from .sessions import first_event_of_session, session_starts
from .text_rows import History, Value, text_rows

COLUMNS = ["user_id", "session_id", "item_id", "timestamp"]
HEADER = ("user_id:token\tsession_id:token\titem_id_list:token_seq\titem_id:token\ttimestamp:float\t"
          "timestamp_list:float_seq\tsession_start_list:float_seq\n")


def read_user_sessions_tsv(path, session_gap=1800.0):
    """A tab-separated ``UserId [SessionId] ItemId Time`` file (Time in seconds). Without a
    SessionId column, a user's session ends after ``session_gap`` idle seconds (30 minutes, the
    papers' rule)."""
    raw = _read_csv(path, "\t", "tab-separated UserId/SessionId/ItemId/Time")
    missing = [name for name in ("UserId", "ItemId", "Time") if name not in raw.columns]
    if missing:
        found = ", ".join(map(str, raw.columns)) or "nothing"
        raise PluginError(f"'{path}' lacks the column(s) {', '.join(missing)} of the user-sessions format (header has "
                          f"{found}): the header must name UserId, SessionId (optional), ItemId and Time")
    if raw.empty:
        raise PluginError(f"'{path}' has a header but no events: give a file with data")
    events = pd.DataFrame({"user_id": raw["UserId"].str.strip(), "item_id": raw["ItemId"].str.strip(),
                           "timestamp": _numeric(raw["Time"], path, "Time")})
    empty = events["user_id"] == ""
    if empty.any():
        raise PluginError(f"'{path}': empty UserId on data line {int(np.flatnonzero(empty.to_numpy())[0]) + 1}: "
                          f"every event needs a user")
    if "SessionId" in raw.columns:
        session = raw["SessionId"].str.strip()
    else:
        if not session_gap or session_gap <= 0:
            raise PluginError(f"--session-gap must be a positive number of seconds, got {session_gap}")
        events = events.sort_values(["user_id", "timestamp"], kind="mergesort").reset_index(drop=True)
        new_user = events["user_id"] != events["user_id"].shift()
        starts = new_user | (events["timestamp"].diff() > session_gap)
        session = starts.cumsum().astype(str)
    # session ids are unique over users (two users' session 1 are two sessions)
    events["session_id"] = events["user_id"] + ":" + pd.Series(session, index=events.index).astype(str)
    _check_tokens(events, path)
    return events[COLUMNS]


def _sort(events):
    """Events by user, sessions by start time, events in time order (stable: ties keep the file's order)."""
    events = events.assign(_start=events.groupby("session_id", sort=False)["timestamp"].transform("min"))
    events = events.sort_values(["user_id", "_start", "session_id", "timestamp"], kind="mergesort")
    return events.drop(columns="_start").reset_index(drop=True)


def filter_users_sessions_items(events, min_item_support=5, min_session_length=2, min_user_sessions=3):
    """Drop rare items, short sessions and users with few sessions until nothing changes."""
    while True:
        before = len(events)
        events = events[events["item_id"].map(events["item_id"].value_counts()).to_numpy() >= min_item_support]
        events = events[events["session_id"].map(events["session_id"].value_counts()).to_numpy() >= min_session_length]
        sessions_per_user = events.groupby("user_id")["session_id"].nunique()
        events = events[events["user_id"].map(sessions_per_user).to_numpy() >= min_user_sessions]
        if len(events) == before:
            return events.reset_index(drop=True)


def _drop_unseen(events, train):
    events = events[events["item_id"].isin(train["item_id"].unique()).to_numpy()]
    return events[events["session_id"].map(events["session_id"].value_counts()).to_numpy() >= 2].reset_index(drop=True)


def apply_session_aware_protocol(events, min_item_support=5, min_session_length=2, min_user_sessions=3,
                                 collapse=False):
    """A user-session log -> dict(train, valid, test): each user's last session is test, the one
    before it validation, the rest training; validation and test events of items unseen in
    training are dropped, then their sessions shorter than 2."""
    if min_user_sessions < 3:
        raise PluginError(f"--min-user-sessions must be at least 3 (a test, a validation and a training session per "
                          f"user), got {min_user_sessions}")
    events = events[COLUMNS].copy()
    events["item_id"] = events["item_id"].astype(str)
    events["timestamp"] = events["timestamp"].astype(np.float64)
    if collapse:  # collapse_repeats works per session, whatever the user
        events = collapse_repeats(events)[COLUMNS]
    events = filter_users_sessions_items(_sort(events), min_item_support, min_session_length, min_user_sessions)
    _check_not_empty(events, f"no events left after keeping items with >= {min_item_support} events, sessions with >= "
                             f"{min_session_length} and users with >= {min_user_sessions} sessions: lower these "
                             f"filters or use more data")
    events = _sort(events)
    session_rank = events.groupby("user_id", sort=False)["session_id"].transform(
        lambda sessions: pd.factorize(sessions)[0])
    from_end = events.groupby("user_id", sort=False)["session_id"].transform("nunique") - 1 - session_rank
    train = events[(from_end >= 2).to_numpy()].reset_index(drop=True)
    valid = _drop_unseen(events[(from_end == 1).to_numpy()], train)
    test = _drop_unseen(events[(from_end == 0).to_numpy()], train)
    _check_not_empty(test, "no test session keeps 2 events of items seen in training: use more data")
    _check_not_empty(valid, "no validation session keeps 2 events of items seen in training: use more data")
    return {"train": train, "valid": valid, "test": test}


def user_prefix_rows(splits, max_history=50):
    """Bytes of the three ``.inter`` files (in chunks): a row per target, with the user's previous
    events (all splits' events before it in time, oldest first, at most ``max_history``) and
    their session-start flags."""
    frames = [splits[split].assign(_split=k) for k, split in enumerate(SPLITS)]
    events = _sort(pd.concat(frames, ignore_index=True))
    users, sessions = (pd.factorize(events[column])[0] for column in ("user_id", "session_id"))
    session_start = session_starts(users, session_ids=sessions)
    rows = np.flatnonzero(~session_start)  # a session's first event is no target
    first = np.maximum(first_event_of_session(session_starts(users))[rows], rows - max_history)
    items, times = tokens_of(events["item_id"]), tokens_of(events["timestamp"])
    fields = [Value(tokens_of(events["user_id"])), Value(tokens_of(events["session_id"])), History(items), Value(items),
              Value(times), History(times), History(session_start.astype(np.int8))]
    split_of = events["_split"].to_numpy()[rows]
    return {split: text_rows(fields, rows[split_of == k], first[split_of == k]) for k, split in enumerate(SPLITS)}


USER_SESSION_LAYOUT = Layout(HEADER, user_prefix_rows, "user_sessions.yaml")

