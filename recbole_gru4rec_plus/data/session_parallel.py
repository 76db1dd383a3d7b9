"""Session- and user-parallel mini-batches (docs/algorithm.md §1, §5): B slots, each walking through one
unit of the training data event by event, and taking the next unit when done. A unit is a session
(GRU4RecPlus) or a user's sessions in order (HRNN): one schedule serves both.

An epoch's whole schedule is computed up front with a few array operations, so the training
loop only slices one row per step and does no per-event Python work.

What the original GRU4Rec does, and so what this does: sessions are dealt to slots in order of
their start time (``shuffle`` draws a new random order per epoch instead); once no session is
left, a slot whose session ends leaves the batch, so the last steps of an epoch carry fewer rows
and cost less; the epoch ends when no slot is left, or, when a row's only negatives are the other
rows' targets (``n_sample: 0``), as soon as fewer than two are left.
"""

import heapq
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class TrainingSessions:
    """Training sessions of two or more events, as one item array and session offsets, and
    (for user-parallel training) which sessions belong to which user."""

    items: np.ndarray  # int32 (int64 past 2^31 items), the sessions' items concatenated in time order
    offsets: np.ndarray  # int64, session s holds items[offsets[s]:offsets[s + 1]]
    start_times: np.ndarray | None = None  # float64, time of each session's first event (None: unknown)
    user_offsets: np.ndarray | None = None  # int64, user u holds sessions user_offsets[u]:user_offsets[u + 1]

    @classmethod
    def from_events(cls, items, starts, times=None, user_starts=None):
        """Cut time-ordered events at session starts; sessions of one event give no target and are
        dropped (and users left with no session). ``user_starts``: True where an event starts a
        user's history (each also a session start), for user-parallel training."""
        items = np.asarray(items)
        bounds = np.append(np.flatnonzero(starts), len(items))
        lengths = np.diff(bounds)
        keep = lengths >= 2
        kept_items = np.repeat(keep, lengths)
        offsets = np.concatenate(([0], np.cumsum(lengths[keep]))).astype(np.int64)
        start_times = None if times is None else np.asarray(times, dtype=np.float64)[bounds[:-1][keep]]
        user_offsets = None
        if user_starts is not None:
            user_of_session = np.cumsum(np.asarray(user_starts, dtype=bool)[bounds[:-1]])[keep]
            first = np.r_[True, user_of_session[1:] != user_of_session[:-1]] if len(user_of_session) else np.zeros(0, bool)
            user_offsets = np.append(np.flatnonzero(first), len(user_of_session)).astype(np.int64)
        kept = items[kept_items] if not kept_items.all() else items
        return cls(items=kept.astype(index_dtype(kept.max(initial=0))), offsets=offsets, start_times=start_times,
                   user_offsets=user_offsets)

    @property
    def lengths(self):
        return np.diff(self.offsets)

    @property
    def n_targets(self):
        return len(self.items) - (len(self.offsets) - 1)

    @property
    def n_users(self):
        return 0 if self.user_offsets is None else len(self.user_offsets) - 1

    def time_order(self):
        """Sessions by start time, oldest first (ties and unknown times: in data order)."""
        n_sessions = len(self.offsets) - 1
        if self.start_times is None:
            return np.arange(n_sessions)
        return np.argsort(self.start_times, kind="stable")

    def input_events(self):
        return input_events(self.offsets)

    def units(self, unit):
        """(steps of each unit, the units' time order) for ``unit`` 'session' or 'user'. A unit's
        steps are its input events; a user's sessions follow each other, so its positions are
        consecutive in ``input_events()``."""
        steps = self.lengths - 1
        order = self.time_order()
        if unit == "session":
            return steps, order
        if self.user_offsets is None:
            raise ValueError("user-parallel batches need the sessions' users (user_starts)")
        user_steps = np.add.reduceat(steps, self.user_offsets[:-1]) if len(steps) else steps
        first_session_rank = np.empty(len(order), dtype=np.int64)
        first_session_rank[order] = np.arange(len(order))
        return user_steps, np.argsort(first_session_rank[self.user_offsets[:-1]], kind="stable")


def index_dtype(largest):
    """int32 for indices and ids up to ``largest`` where they fit (half the memory of int64), else int64."""
    return np.int32 if largest < np.iinfo(np.int32).max else np.int64


def input_events(offsets):
    """Index of every event that has a target (all but each session's last), in data order: the
    positions that a schedule's entries point to. Input p of session s is event p + s."""
    offsets = np.asarray(offsets, dtype=np.int64)
    steps = np.diff(offsets) - 1
    dtype = index_dtype(offsets[-1])
    return np.arange(int(steps.sum()), dtype=dtype) + np.repeat(np.arange(len(steps), dtype=dtype), steps)


def parallel_schedule(unit_steps, order, batch_size, min_active=1, chunk_steps=1 << 20):
    """Where each slot is at each step: an (n_steps, batch_size) int64 array of positions.

    Units (of ``unit_steps`` >= 1 steps each, taken in ``order``) are dealt to slots: a slot
    that finishes its unit takes the next unused one at the next step (lowest slot first). Unit
    u's steps are positions cumsum(unit_steps)[u - 1] ... in turn; entry [step, slot] is the
    slot's position. -1 marks a slot that has left the batch once no unit was left for it.
    Steps with fewer than ``min_active`` slots left are not scheduled. Entries are int32 where
    the positions fit. The entries are filled about ``chunk_steps`` at a time (bounded temporaries
    for tens of millions of events).
    """
    unit_steps = np.asarray(unit_steps, dtype=np.int64)
    steps_per_unit = unit_steps[order]
    offsets = np.concatenate(([0], np.cumsum(unit_steps)))[:-1][order]
    free_at = [(0, slot) for slot in range(batch_size)]
    first_step = np.empty(len(order), dtype=np.int64)
    slot_of = np.empty(len(order), dtype=np.int64)
    for k, n_steps in enumerate(steps_per_unit.tolist()):
        step, slot = heapq.heappop(free_at)
        first_step[k], slot_of[k] = step, slot
        heapq.heappush(free_at, (step + n_steps, slot))
    last_step = first_step + steps_per_unit  # one past each unit's last step
    total_steps = int(last_step.max()) if len(order) else 0
    if min_active > 1 and total_steps:
        # active slots per step: +1 where a unit starts, -1 where it ends (non-increasing at the tail)
        change = np.bincount(first_step, minlength=total_steps + 1) - np.bincount(last_step, minlength=total_steps + 1)
        too_few = np.flatnonzero(np.cumsum(change)[:total_steps] < min_active)
        total_steps = int(too_few[0]) if len(too_few) else total_steps
    schedule = np.full((total_steps, batch_size), -1, dtype=index_dtype(unit_steps.sum()))
    flat = schedule.reshape(-1)
    for part in _chunks_of_steps(steps_per_unit, chunk_steps):
        n_steps = steps_per_unit[part]
        unit = np.repeat(np.arange(len(n_steps)), n_steps)
        within = np.arange(len(unit)) - np.repeat(np.cumsum(n_steps) - n_steps, n_steps)
        step = first_step[part][unit] + within
        scheduled = step < total_steps
        cell = step[scheduled] * batch_size + slot_of[part][unit[scheduled]]
        flat[cell] = (offsets[part][unit] + within)[scheduled]
    return schedule


def _chunks_of_steps(steps_per_unit, most):
    """Slices of consecutive units, each ending with the unit that takes the running step count
    to the next multiple of ``most`` (so fewer than ``most`` steps plus one unit's)."""
    total = np.cumsum(steps_per_unit)
    if not len(total):
        return []
    ends = np.unique(np.append(np.searchsorted(total, np.arange(most, total[-1], most)) + 1, len(total)))
    return [slice(start, end) for start, end in zip(np.r_[0, ends[:-1]].tolist(), ends.tolist())]


def session_parallel_schedule(lengths, order, batch_size, min_active=1):
    """``parallel_schedule`` over sessions of ``lengths`` events, as event indices within the
    concatenated sessions (the input event of each slot; its target is the event after it)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    schedule = parallel_schedule(lengths - 1, order, batch_size, min_active)
    events = input_events(np.r_[0, np.cumsum(lengths)])
    return np.where(schedule >= 0, events[np.maximum(schedule, 0)], -1) if schedule.size else schedule


class SessionParallelBatch:
    """One step: input items, target items, which rows start a session, and which slots the rows are.

    ``slots`` is None while every slot has a session (almost every step); at the epoch's tail it
    holds the indices of the slots still in the batch, and the other tensors hold their rows only.
    ``user_starts`` (user-parallel batches only): which rows start a user's first session.
    """

    __slots__ = ("inputs", "targets", "starts", "slots", "user_starts")

    def __init__(self, inputs, targets, starts, slots=None, user_starts=None):
        self.inputs, self.targets, self.starts, self.slots = inputs, targets, starts, slots
        self.user_starts = user_starts


class SessionParallelDataLoader:
    """Iterates over the session-parallel (``unit='session'``) or user-parallel (``unit='user'``)
    steps of one epoch.

    Units are taken in order of their (first session's) start time, as in the original GRU4Rec;
    with ``shuffle`` in a new random order every epoch (RecBole's habit). ``len()`` is the exact
    number of steps of the next epoch. ``min_active``: the fewest rows a step may have (2 when
    the in-batch targets are a row's only negatives).
    """

    def __init__(self, config, dataset, sessions, shuffle=False, min_active=1, unit="session"):
        self.config = config
        self.dataset = dataset  # RecBole's training Dataset, for RecBole's evaluator hooks
        self.sessions = sessions
        self.batch_size = config["train_batch_size"]
        self.shuffle = shuffle
        self.min_active = min_active
        self.unit = unit
        self.device = config["device"]
        self.rng = np.random.default_rng(config["seed"])
        self._unit_steps, self._time_order = sessions.units(unit)
        # per position (an input event): its event index, and whether it starts a session; a step
        # gathers its rows' items through them (no input and target copy per event: memory)
        self._items = torch.from_numpy(sessions.items)
        self._events = torch.from_numpy(sessions.input_events())
        starts = np.zeros(len(self._events), dtype=bool)
        starts[sessions.offsets[:-1] - np.arange(len(sessions.offsets) - 1)] = True  # first input of each session
        self._starts = torch.from_numpy(starts)
        self._user_starts = None
        if unit == "user":
            user_starts = np.zeros(len(self._events), dtype=bool)
            user_starts[np.cumsum(self._unit_steps) - self._unit_steps] = True
            self._user_starts = torch.from_numpy(user_starts)
        self._schedule = None  # the next epoch's; kept across epochs when the order never changes

    def state_dict(self):
        """The session order's generator, for an exact resume."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["rng"]
        self._schedule = None if self.shuffle else self._schedule

    def _next_schedule(self):
        if self._schedule is None:
            order = self.rng.permutation(len(self._unit_steps)) if self.shuffle else self._time_order
            schedule = parallel_schedule(self._unit_steps, order, self.batch_size, self.min_active)
            self._schedule = torch.from_numpy(schedule)
        return self._schedule

    def __len__(self):
        """Number of steps of the next epoch."""
        return len(self._next_schedule())

    def __iter__(self):
        schedule = self._next_schedule()
        if self.shuffle:
            self._schedule = None  # a new order next epoch
        idle_steps = (schedule < 0).any(dim=1)
        first_partial = int(idle_steps.float().argmax()) if idle_steps.any() else len(schedule)
        items, events, starts = (t.to(self.device) for t in (self._items, self._events, self._starts))
        user_starts = None if self._user_starts is None else self._user_starts.to(self.device)
        schedule = schedule.to(self.device)
        for step in range(len(schedule)):
            positions = schedule[step]  # a step's rows are gathered here, not for the whole epoch: memory
            slots = None
            if step >= first_partial:
                slots = torch.nonzero(positions >= 0).squeeze(1)
                positions = positions[slots]
            inputs = events[positions]
            yield SessionParallelBatch(items[inputs].long(), items[inputs + 1].long(), starts[positions], slots,
                                       None if user_starts is None else user_starts[positions])
