"""Where sessions start inside time-ordered user histories (docs/algorithm.md §6)."""

import numpy as np


def session_starts(user_ids, timestamps=None, session_ids=None, session_gap=None):
    """Boolean array: True where an event starts a session.

    Events must be sorted by user, then time. A session is (a) a run of equal ``session_ids``,
    or (b) a run of one user's events with no gap above ``session_gap`` seconds, or (c) a
    user's whole history when neither is given. A new user always starts a new session.
    """
    user_ids = np.asarray(user_ids)
    starts = np.ones(len(user_ids), dtype=bool)
    if len(user_ids) == 0:
        return starts
    starts[1:] = user_ids[1:] != user_ids[:-1]
    if session_ids is not None:
        session_ids = np.asarray(session_ids)
        starts[1:] |= session_ids[1:] != session_ids[:-1]
    if session_gap is not None:
        timestamps = np.asarray(timestamps, dtype=np.float64)
        starts[1:] |= np.diff(timestamps) > session_gap
    return starts


def first_event_of_session(starts):
    """For every event, the index of the first event of its session."""
    index = np.where(starts, np.arange(len(starts)), 0)
    return np.maximum.accumulate(index) if len(index) else index
