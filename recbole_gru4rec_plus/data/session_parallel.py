"""Session-parallel mini-batches (REFERENCE §1): B slots, each walking through one session.

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
    """Training sessions of two or more events, as one item array and session offsets."""

    items: np.ndarray  # int64, the sessions' items concatenated in time order
    offsets: np.ndarray  # int64, session s holds items[offsets[s]:offsets[s + 1]]
    start_times: np.ndarray | None = None  # float64, time of each session's first event (None: unknown)

    @classmethod
    def from_events(cls, items, starts, times=None):
        """Cut time-ordered events at session starts; sessions of one event give no target and are dropped."""
        items = np.asarray(items, dtype=np.int64)
        bounds = np.append(np.flatnonzero(starts), len(items))
        lengths = np.diff(bounds)
        keep = lengths >= 2
        kept_items = np.repeat(keep, lengths)
        offsets = np.concatenate(([0], np.cumsum(lengths[keep]))).astype(np.int64)
        start_times = None if times is None else np.asarray(times, dtype=np.float64)[bounds[:-1][keep]]
        return cls(items=items[kept_items], offsets=offsets, start_times=start_times)

    @property
    def lengths(self):
        return np.diff(self.offsets)

    @property
    def n_targets(self):
        return len(self.items) - (len(self.offsets) - 1)

    def time_order(self):
        """Sessions by start time, oldest first (ties and unknown times: in data order)."""
        n_sessions = len(self.offsets) - 1
        if self.start_times is None:
            return np.arange(n_sessions)
        return np.argsort(self.start_times, kind="stable")


def session_parallel_schedule(lengths, order, batch_size, min_active=1):
    """Where each slot's input event is at each step: an (n_steps, batch_size) int64 array.

    Sessions (of ``lengths`` >= 2, taken in ``order``) are dealt to slots: a slot that finishes
    its session takes the next unused one at the next step (lowest slot first). Entry
    [step, slot] is the index, within the concatenated sessions, of the slot's input event;
    its target is the event after it. -1 marks a slot that has left the batch once no session
    was left for it. Steps with fewer than ``min_active`` slots left are not scheduled.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    steps_per_session = lengths[order] - 1
    offsets = np.concatenate(([0], np.cumsum(lengths)))[:-1][order]
    free_at = [(0, slot) for slot in range(batch_size)]
    first_step = np.empty(len(order), dtype=np.int64)
    slot_of = np.empty(len(order), dtype=np.int64)
    for k, n_steps in enumerate(steps_per_session.tolist()):
        step, slot = heapq.heappop(free_at)
        first_step[k], slot_of[k] = step, slot
        heapq.heappush(free_at, (step + n_steps, slot))
    last_step = first_step + steps_per_session  # one past each session's last step
    total_steps = int(last_step.max()) if len(order) else 0
    if min_active > 1 and total_steps:
        # active slots per step: +1 where a session starts, -1 where it ends (non-increasing at the tail)
        change = np.bincount(first_step, minlength=total_steps + 1) - np.bincount(last_step, minlength=total_steps + 1)
        too_few = np.flatnonzero(np.cumsum(change)[:total_steps] < min_active)
        total_steps = int(too_few[0]) if len(too_few) else total_steps
    schedule = np.full((total_steps, batch_size), -1, dtype=np.int64)
    flat = schedule.reshape(-1)
    for chunk in range(0, len(order), 65536):  # bounded temporaries for tens of millions of events
        part = slice(chunk, chunk + 65536)
        n_steps = steps_per_session[part]
        session = np.repeat(np.arange(len(n_steps)), n_steps)
        within = np.arange(len(session)) - np.repeat(np.cumsum(n_steps) - n_steps, n_steps)
        step = first_step[part][session] + within
        scheduled = step < total_steps
        cell = step[scheduled] * batch_size + slot_of[part][session[scheduled]]
        flat[cell] = (offsets[part][session] + within)[scheduled]
    return schedule


class SessionParallelBatch:
    """One step: input items, target items, which rows start a session, and which slots the rows are.

    ``slots`` is None while every slot has a session (almost every step); at the epoch's tail it
    holds the indices of the slots still in the batch, and the other tensors hold their rows only.
    """

    __slots__ = ("inputs", "targets", "starts", "slots")

    def __init__(self, inputs, targets, starts, slots=None):
        self.inputs, self.targets, self.starts, self.slots = inputs, targets, starts, slots


class SessionParallelDataLoader:
    """Iterates over the session-parallel steps of one epoch.

    Sessions are taken in order of their start time, as in the original GRU4Rec; with
    ``shuffle`` in a new random order every epoch (RecBole's habit). ``len()`` is the exact
    number of steps of the next epoch. ``min_active``: the fewest rows a step may have (2 when
    the in-batch targets are a row's only negatives).
    """

    def __init__(self, config, dataset, sessions, shuffle=False, min_active=1):
        self.config = config
        self.dataset = dataset  # RecBole's training Dataset, for RecBole's evaluator hooks
        self.sessions = sessions
        self.batch_size = config["train_batch_size"]
        self.shuffle = shuffle
        self.min_active = min_active
        self.device = config["device"]
        self.rng = np.random.default_rng(config["seed"])
        self._items = torch.from_numpy(sessions.items)
        starts = np.zeros(len(sessions.items), dtype=bool)
        starts[sessions.offsets[:-1]] = True
        self._starts = torch.from_numpy(starts)
        self._schedule = None  # the next epoch's; kept across epochs when the order never changes

    def state_dict(self):
        """The session order's generator, for an exact resume."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["rng"]
        self._schedule = None if self.shuffle else self._schedule

    def _next_schedule(self):
        if self._schedule is None:
            order = self.rng.permutation(len(self.sessions.offsets) - 1) if self.shuffle else self.sessions.time_order()
            schedule = session_parallel_schedule(self.sessions.lengths, order, self.batch_size, self.min_active)
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
        items, starts = self._items.to(self.device), self._starts.to(self.device)
        next_items = torch.roll(items, -1)  # the target of the event at index i (never read past a session)
        schedule = schedule.to(self.device)
        for step in range(len(schedule)):
            inputs = schedule[step]  # a step's inputs are gathered here, not for the whole epoch: memory
            slots = None
            if step >= first_partial:
                slots = torch.nonzero(inputs >= 0).squeeze(1)
                inputs = inputs[slots]
            yield SessionParallelBatch(items[inputs], next_items[inputs], starts[inputs], slots)
