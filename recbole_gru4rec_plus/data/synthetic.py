"""Synthetic session data with known structure, for benchmarks and planted-signal tests."""

import os

import numpy as np


def zipf_sessions(n_events, n_sessions, n_items, exponent=1.0, transition_strength=0.0, seed=0):
    """Sessions of Zipf-popular items; with ``transition_strength`` p, the next item is the
    current item's fixed successor with probability p (a planted item-to-item signal).

    Returns (session_ids, item_ids, timestamps) as int64 arrays, events of a session in time
    order; item ids start at 1 and each session has at least 2 events.
    """
    rng = np.random.default_rng(seed)
    lengths = 2 + rng.multinomial(n_events - 2 * n_sessions, np.full(n_sessions, 1.0 / n_sessions))
    popularity = 1.0 / np.arange(1, n_items + 1) ** exponent
    popularity /= popularity.sum()
    successor = rng.permutation(n_items) + 1
    items = rng.choice(n_items, size=n_events, p=popularity) + 1
    if transition_strength > 0:
        follow = rng.random(n_events) < transition_strength
        session_starts = np.r_[0, np.cumsum(lengths)[:-1]]
        follow[session_starts] = False
        for position in np.flatnonzero(follow):  # sequential by nature: each step depends on the last
            items[position] = successor[items[position - 1] - 1]
    session_ids = np.repeat(np.arange(1, n_sessions + 1), lengths)
    timestamps = np.arange(n_events, dtype=np.int64) * 60 + session_ids * 86400
    return session_ids, items.astype(np.int64), timestamps


def write_atomic_inter(folder, name, user_ids, item_ids, timestamps):
    """Write ``folder/name/name.inter`` (RecBole atomic format) and return the data_path to use."""
    os.makedirs(os.path.join(folder, name), exist_ok=True)
    path = os.path.join(folder, name, f"{name}.inter")
    table = np.column_stack((user_ids, item_ids, timestamps))
    np.savetxt(path, table, fmt="%d", delimiter="\t", header="user_id:token\titem_id:token\ttimestamp:float", comments="")
    return folder


def dwell_sessions(n_sessions, n_items, length=8, cluster_size=3, follow=0.7, long_dwell=600, seed=0, planted=True):
    """Sessions in which the user dwells long on one 'key' item; afterwards, with probability
    ``follow``, items come from the key's cluster of ``cluster_size`` items. With ``planted`` False
    the long dwell falls on a random item unrelated to what follows (no signal in dwell times).

    Returns (session_ids, item_ids, timestamps) like ``zipf_sessions``.
    """
    rng = np.random.default_rng(seed)
    clusters = rng.integers(1, n_items + 1, size=(n_items + 1, cluster_size))
    items = rng.integers(1, n_items + 1, size=(n_sessions, length))
    dwell = rng.integers(5, 30, size=(n_sessions, length))
    key_position = rng.integers(0, length - 2, size=n_sessions)
    rows = np.arange(n_sessions)
    keys = items[rows, key_position]
    long_position = key_position if planted else rng.integers(0, length - 2, size=n_sessions)
    dwell[rows, long_position] = long_dwell
    after_key = np.arange(length)[None, :] > key_position[:, None]
    from_cluster = after_key & (rng.random((n_sessions, length)) < follow)
    cluster_items = clusters[keys][rows[:, None], rng.integers(0, cluster_size, size=(n_sessions, length))]
    items = np.where(from_cluster, cluster_items, items)
    timestamps = np.cumsum(dwell, axis=1) + rows[:, None] * 86400
    session_ids = np.repeat(np.arange(1, n_sessions + 1), length)
    return session_ids, items.ravel().astype(np.int64), timestamps.ravel().astype(np.int64)
