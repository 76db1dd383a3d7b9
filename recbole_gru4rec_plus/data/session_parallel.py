"""Session-parallel mini-batches (REFERENCE §1): B slots, each walking through one session.

An epoch's whole schedule is computed up front with a few array operations, so the training
loop only slices one row per step and does no per-event Python work.
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

    @classmethod
    def from_events(cls, items, starts):
        """Cut time-ordered events at session starts; sessions of one event give no target and are dropped."""
        items = np.asarray(items, dtype=np.int64)
        bounds = np.append(np.flatnonzero(starts), len(items))
        lengths = np.diff(bounds)
        keep = lengths >= 2
        kept_items = np.repeat(keep, lengths)
        offsets = np.concatenate(([0], np.cumsum(lengths[keep]))).astype(np.int64)
        return cls(items=items[kept_items], offsets=offsets)

    @property
    def lengths(self):
        return np.diff(self.offsets)

    @property
    def n_targets(self):
        return len(self.items) - (len(self.offsets) - 1)


def session_parallel_schedule(lengths, order, batch_size):
    """Where each slot's input event is at each step: an (n_steps, batch_size) int64 array.

    Sessions (of ``lengths`` >= 2, taken in ``order``) are dealt to slots: a slot that finishes
    its session takes the next unused one at the next step (lowest slot first). Entry
    [step, slot] is the index, within the concatenated sessions, of the slot's input event;
    its target is the event after it. -1 marks a slot left idle once no session is left.
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
    total_steps = int((first_step + steps_per_session).max()) if len(order) else 0
    schedule = np.full((total_steps, batch_size), -1, dtype=np.int64)
    flat = schedule.reshape(-1)
    for chunk in range(0, len(order), 65536):  # bounded temporaries for tens of millions of events
        part = slice(chunk, chunk + 65536)
        n_steps = steps_per_session[part]
        session = np.repeat(np.arange(len(n_steps)), n_steps)
        within = np.arange(len(session)) - np.repeat(np.cumsum(n_steps) - n_steps, n_steps)
        cell = (first_step[part][session] + within) * batch_size + slot_of[part][session]
        flat[cell] = offsets[part][session] + within
    return schedule


class SessionParallelBatch:
    """One step of B slots: input items, target items, which slots start a session, which are active."""

    __slots__ = ("inputs", "targets", "starts", "active")

    def __init__(self, inputs, targets, starts, active):
        self.inputs, self.targets, self.starts, self.active = inputs, targets, starts, active


class SessionParallelDataLoader:
    """Iterates over the session-parallel steps of one epoch; reshuffles sessions every epoch.

    ``active`` is None while every slot has a session (almost every step), else a bool mask.
    """

    def __init__(self, config, dataset, sessions, shuffle=True):
        self.config = config
        self.dataset = dataset  # RecBole's training Dataset, for RecBole's evaluator hooks
        self.sessions = sessions
        self.batch_size = config["train_batch_size"]
        self.shuffle = shuffle
        self.device = config["device"]
        self.rng = np.random.default_rng(config["seed"])
        self._items = torch.from_numpy(sessions.items)
        starts = np.zeros(len(sessions.items), dtype=bool)
        starts[sessions.offsets[:-1]] = True
        self._starts = torch.from_numpy(starts)
        self._n_steps = -(-sessions.n_targets // self.batch_size)

    def __len__(self):
        """Number of steps of the last epoch scheduled (an estimate before the first)."""
        return self._n_steps

    def __iter__(self):
        n_sessions = len(self.sessions.offsets) - 1
        order = self.rng.permutation(n_sessions) if self.shuffle else np.arange(n_sessions)
        schedule = torch.from_numpy(session_parallel_schedule(self.sessions.lengths, order, self.batch_size))
        self._n_steps = len(schedule)
        idle_steps = (schedule < 0).any(dim=1)
        first_partial = int(idle_steps.float().argmax()) if idle_steps.any() else len(schedule)
        items, starts = self._items.to(self.device), self._starts.to(self.device)
        schedule = schedule.to(self.device)
        for step in range(len(schedule)):
            inputs = schedule[step]  # a step's inputs are gathered here, not for the whole epoch: memory
            active = inputs >= 0 if step >= first_partial else None
            yield SessionParallelBatch(items[inputs], items[inputs + 1], starts[inputs], active)
