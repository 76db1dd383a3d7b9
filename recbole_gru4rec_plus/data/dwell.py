"""Dwell-time slicing (Bogina & Kuflik, RecTemp 2017; docs/algorithm.md §4), for training sequences only."""

import numpy as np

from ..errors import PluginError


def dwell_copies(timestamps, starts, threshold, max_copies):
    """How many times each event appears: floor(dwell / threshold) + 1, capped at ``max_copies``.

    Dwell = time of the next event of the same session − time of this one; the last event of a
    session has no known dwell and is kept once. Events in time order, ``starts`` marks session starts.
    """
    if not threshold or threshold <= 0:
        raise PluginError(f"dwell_threshold must be a positive number of seconds, got {threshold!r}")
    if not isinstance(max_copies, int) or max_copies < 1:
        raise PluginError(f"dwell_max_copies must be an integer >= 1, got {max_copies!r}")
    timestamps = np.asarray(timestamps, dtype=np.float64)
    dwell = np.zeros(len(timestamps))
    has_next = np.r_[~np.asarray(starts[1:], dtype=bool), False]
    dwell[:-1] = np.diff(timestamps)
    dwell[~has_next] = 0.0
    return np.minimum(np.floor(np.maximum(dwell, 0.0) / threshold).astype(np.int64) + 1, max_copies)


def repeat_events(columns, starts, copies):
    """Each event array of ``columns`` repeated ``copies`` times per event, and the session starts
    of the result: only the first copy of a session's first event starts it."""
    repeated_starts = np.zeros(int(copies.sum()), dtype=bool)
    repeated_starts[np.cumsum(copies) - copies] = starts
    return tuple(np.repeat(column, copies) for column in columns), repeated_starts
