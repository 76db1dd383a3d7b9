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


def dwell_key_sessions(n_sessions, n_keys=50, cluster_size=4, n_distractors=500, gap=3, planted=True, seed=0):
    """Sessions ``key, gap distractors, target``: the target is drawn from the key's cluster, so
    predicting it means remembering the key across the distractors. Dwell times are short (5-30 s)
    except one long one (300-600 s): on the key (``planted``), or on a random distractor (the
    control: the same number of long dwells, on items that say nothing of the target).

    Returns (session_ids, item_ids, timestamps) like ``zipf_sessions``; one session a day. Keys are
    items 1..n_keys, cluster items follow, then the distractors.
    """
    rng = np.random.default_rng(seed)
    rows = np.arange(n_sessions)
    keys = rng.integers(0, n_keys, size=n_sessions)
    targets = n_keys + keys * cluster_size + rng.integers(0, cluster_size, size=n_sessions) + 1
    distractors = n_keys * (1 + cluster_size) + rng.integers(1, n_distractors + 1, size=(n_sessions, gap))
    items = np.column_stack([keys + 1, distractors, targets])
    dwell = rng.uniform(5, 30, size=items.shape)
    long_position = np.zeros(n_sessions, dtype=np.int64) if planted else rng.integers(1, gap + 1, size=n_sessions)
    dwell[rows, long_position] = rng.uniform(300, 600, size=n_sessions)
    # an event's dwell is the time until the next event of its session
    timestamps = np.cumsum(dwell, axis=1) - dwell + rows[:, None] * 86400
    session_ids = np.repeat(rows + 1, items.shape[1])
    return session_ids, items.ravel().astype(np.int64), timestamps.ravel()


def user_taste_sessions(n_users, sessions_per_user, n_groups=20, group_size=10, n_openers=200, session_length=2,
                        planted=True, seed=0):
    """Users with a persistent taste: every user has an item group, and each of its sessions is an
    opener (uniform over ``n_openers`` items shared by all, so it says nothing of the taste), then
    ``session_length - 1`` items of the user's group. Predicting a session's first target means
    remembering the user's earlier sessions. The control (``planted=False``) draws the group anew
    for every session: no user signal.

    Returns (user_ids, item_ids, timestamps) as int64 arrays, sorted by user and time: one session a
    day per user, events a minute apart. Openers are items 1..n_openers, group items follow.
    """
    rng = np.random.default_rng(seed)
    n_sessions = n_users * sessions_per_user
    users = np.repeat(np.arange(n_users), sessions_per_user)
    groups = rng.integers(0, n_groups, size=n_users)[users] if planted else rng.integers(0, n_groups, size=n_sessions)
    openers = rng.integers(1, n_openers + 1, size=(n_sessions, 1))
    tastes = n_openers + 1 + groups[:, None] * group_size + rng.integers(0, group_size, size=(n_sessions, session_length - 1))
    items = np.column_stack((openers, tastes))
    day = np.tile(np.arange(sessions_per_user), n_users)
    timestamps = (day * 86400)[:, None] + np.arange(session_length)[None, :] * 60
    return (np.repeat(users + 1, session_length), items.ravel().astype(np.int64), timestamps.ravel().astype(np.int64))


def random_successors(n_items=300, n_successors=5, seed=0):
    """A sparse random Markov chain (``n_items`` × ``n_items`` row-stochastic matrix): each item has
    ``n_successors`` random successors with Dirichlet(1) probabilities."""
    rng = np.random.default_rng(seed)
    transitions = np.zeros((n_items, n_items))
    for item in range(n_items):
        transitions[item, rng.choice(n_items, size=n_successors, replace=False)] = rng.dirichlet(np.ones(n_successors))
    return transitions


def rook_moves(board=8, columns=None):
    """A rook's walk on a ``board`` × ``columns`` board (square when ``columns`` is None; items
    are squares, row-major): the next square is uniform over the other squares of the current
    one's row and column.

    The softmax bottleneck in its plainest form: one softmax's logits h·e + b can add a row term
    and a column term, but giving "this row OR this column, not this square" its probabilities
    takes about rows + columns dimensions; a mixture represents it with heads of about
    max(rows, columns) dimensions each (one for the row, one for the column)."""
    columns = board if columns is None else columns
    squares = np.arange(board * columns)
    rows, cols = squares // columns, squares % columns
    moves = (rows[:, None] == rows[None]) | (cols[:, None] == cols[None])
    np.fill_diagonal(moves, False)
    return moves / moves.sum(axis=1, keepdims=True)


def markov_sessions(transitions, n_sessions, session_length=10, seed=0):
    """Sessions walking a Markov chain (``transitions[i, j]`` = p(next j | current i)) from a
    uniform first item, so the truth behind every next-item target is known.

    Returns (session_ids, item_ids, timestamps) like ``zipf_sessions``; item ids are the chain's
    states + 1.
    """
    rng = np.random.default_rng(seed)
    n_items = len(transitions)
    cumulative = np.cumsum(transitions, axis=1)
    items = np.empty((n_sessions, session_length), dtype=np.int64)
    items[:, 0] = rng.integers(0, n_items, size=n_sessions)
    for position in range(1, session_length):  # all sessions step together: one vector draw per position
        draw = rng.random(n_sessions)[:, None] * cumulative[:, -1][items[:, position - 1], None]
        items[:, position] = np.minimum((draw >= cumulative[items[:, position - 1]]).sum(axis=1), n_items - 1)
    session_ids = np.repeat(np.arange(1, n_sessions + 1), session_length)
    timestamps = np.arange(n_sessions * session_length, dtype=np.int64) * 60 + session_ids * 86400
    return session_ids, items.ravel() + 1, timestamps


def markov_kl(model, data, transitions):
    """Mean KL(truth ‖ model) over the rows of a RecBole loader of ``markov_sessions`` data: the
    truth is the chain's row for the row's last item, the model's distribution its
    ``full_sort_log_probs``. A likelihood measure of how well the model represents the chain,
    which ranking metrics do not show when only the probabilities are wrong."""
    import torch

    tokens = data.dataset.field2id_token[data.dataset.iid_field]
    state_of = np.array([-1] + [int(token) - 1 for token in tokens[1:]])  # internal item id -> chain state
    internal_ids = np.argsort(state_of[1:]) + 1  # the internal id of chain states 0, 1, ...
    truth_log = np.log(np.where(transitions > 0, transitions, 1.0))
    total, rows = 0.0, 0
    model.eval()
    with torch.no_grad():
        for interaction, *_ in data:
            interaction = interaction.to(model.device)
            log_p = model.full_sort_log_probs(interaction).double().cpu().numpy()[:, internal_ids]
            sequence, length = interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN]
            last = state_of[sequence[torch.arange(len(sequence)), length - 1].cpu().numpy()]
            truth = transitions[last]
            total += float((truth * (truth_log[last] - log_p)).sum())
            rows += len(last)
    return total / rows
