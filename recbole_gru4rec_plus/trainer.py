"""Trainers: session-parallel training for the plugin's models; one run's checkpoints for all models.

RecBole 1.2.1's trainer names its checkpoint by model and second (two runs started together share
it), rewrites it in place (a kill mid-write leaves a broken file), loads it with ``torch.load``
without ``weights_only`` (which fails since torch 2.6: its checkpoints pickle the ``Config``;
recbole/trainer/trainer.py, lines 323 and 583), and its resume continues differently from an
uninterrupted run. ``RunCheckpointMixin``, mixed into every trainer the plugin runs, names the
checkpoints by the run id, writes them atomically, keeps a ``last`` checkpoint after every epoch
with everything needed to continue exactly, and loads them safely.
"""

import math
import os
import time

import torch
from recbole.trainer import Trainer
from recbole.utils import get_trainer, set_color
from tqdm import tqdm

from .errors import PluginError
from .optim import IndexedAdagradM
from .runs import atomic_torch_save, random_states, run_name, set_random_states


def load_checkpoint(path, device="cpu"):
    """Load a RecBole checkpoint (it pickles the Config: only load files you wrote yourself)."""
    return torch.load(path, map_location=device, weights_only=False)


class PerTargetRanks:
    """Each evaluated target's rank, and its reciprocal rank and hit at ``k``, keyed by
    'user|item|occurrence' tokens (the same keys for every model of a dataset). The rank is the
    target's place in the evaluator's own top-max(topk) list (torch.topk of the same scores, as
    RecBole's collector takes it; 0 when it is not listed), so that means over targets are RecBole's
    metrics exactly, ties and all: the paired tests and the popularity breakdown read the numbers
    the board reports."""

    def __init__(self, dataset, k):
        self.dataset, self.k, self.topk = dataset, k, sorted(dataset.config["topk"])
        self.list_length = max(self.topk)
        self.keys, self.item_ids, self.ranks, self._seen = [], [], [], {}

    def add(self, scores, interaction, positive_u, positive_i):
        listed = torch.topk(scores, self.list_length, dim=-1).indices[positive_u] == positive_i.unsqueeze(1)
        self.ranks += torch.where(listed.any(1), listed.int().argmax(1) + 1, 0).tolist()
        self.item_ids += positive_i.tolist()
        # numpy arrays, not tensors: numpy reads a one-element tensor as a scalar index, and a
        # batch with one target would give one token string, whose characters zip would pair up
        users = self.dataset.id2token(self.dataset.uid_field, interaction[self.dataset.uid_field][positive_u].cpu().numpy())
        items = self.dataset.id2token(self.dataset.iid_field, positive_i.cpu().numpy())
        for user, item in zip(users, items):
            pair = f"{user}|{item}"
            occurrence = self._seen[pair] = self._seen.get(pair, -1) + 1
            self.keys.append(f"{pair}|{occurrence}")

    def as_dict(self):
        within = [0 < rank <= self.k for rank in self.ranks]
        return {"k": self.k, "topk": self.topk, "keys": self.keys, "item_ids": self.item_ids, "rank": self.ranks,
                "reciprocal_rank": [1.0 / rank if hit else 0.0 for rank, hit in zip(self.ranks, within)],
                "hit": [int(hit) for hit in within]}


def _loader_state(loader):
    """A training loader's own random state: ours has a state_dict, RecBole's a torch generator."""
    if hasattr(loader, "state_dict"):
        return loader.state_dict()
    generator = getattr(loader, "generator", None)
    return {"generator": generator.get_state()} if generator is not None else None


def _load_loader_state(loader, state):
    if hasattr(loader, "load_state_dict"):
        loader.load_state_dict(state)
    elif "generator" in state:
        loader.generator.set_state(state["generator"])


class RunCheckpointMixin:
    """The best checkpoint (for the final test) and the ``last`` one (to resume), of this run only.

    ``last`` is written when an epoch and its validation are done, i.e. when the next epoch
    starts and when training ends: model, optimizer, the model's own state (its sampler), the
    training loader's state, every random generator, the epoch and early stopping's state.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        stem = os.path.join(self.checkpoint_dir, run_name(config))
        self.saved_model_file = stem + ".pth"
        self.last_checkpoint_file = stem + "-last.pth"
        self.last_saved_epoch = None  # the epoch the last checkpoint holds
        self.best_epoch = None  # the epoch of the best checkpoint (chosen on validation)
        self.epoch_seconds = []  # training time of each epoch this trainer ran
        self.valid_curve = []  # [epoch, training seconds so far, validation score] per evaluated epoch
        self._train_data = self._trained_epoch = None
        self._keep_checkpoints = True

    def _checkpoint(self, epoch, optimizer=True):
        state = {"config": self.config, "epoch": epoch, "cur_step": self.cur_step,
                 "best_valid_score": self.best_valid_score, "state_dict": self.model.state_dict(),
                 "other_parameter": self.model.other_parameter()}
        if optimizer:
            state["optimizer"] = self.optimizer.state_dict()
        return state

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        """The best model, for the final test and load_data_and_model: no optimizer state (resuming
        reads the last checkpoint)."""
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        atomic_torch_save(self._checkpoint(epoch, optimizer=False), path)
        self.best_epoch = epoch
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {path}")

    def save_last_checkpoint(self, epoch):
        state = self._checkpoint(epoch)
        state.update(best_valid_result=self.best_valid_result, best_model_file=self.saved_model_file,
                     best_epoch=self.best_epoch, random_states=random_states(),
                     train_data=_loader_state(self._train_data), valid_curve=self.valid_curve,
                     epoch_seconds=self.epoch_seconds)
        atomic_torch_save(state, self.last_checkpoint_file)
        self.last_saved_epoch = epoch

    def resume(self, path, train_data):
        """Continue the run that wrote the last checkpoint ``path``, exactly where it stopped."""
        checkpoint = load_checkpoint(path, self.device)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step, self.best_valid_score = checkpoint["cur_step"], checkpoint["best_valid_score"]
        self.best_valid_result = checkpoint.get("best_valid_result")
        self.saved_model_file = checkpoint.get("best_model_file", self.saved_model_file)
        self.last_checkpoint_file = path
        self.last_saved_epoch, self.best_epoch = checkpoint["epoch"], checkpoint.get("best_epoch")
        self.valid_curve = list(checkpoint.get("valid_curve", []))
        self.epoch_seconds = list(checkpoint.get("epoch_seconds", []))
        if checkpoint.get("train_data") is not None and train_data is not None:
            _load_loader_state(train_data, checkpoint["train_data"])
        if "random_states" in checkpoint:
            set_random_states(checkpoint["random_states"])
        self.logger.info(f"Resuming from {path}: epoch {self.start_epoch} of {self.epochs}")

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self._train_data, self._keep_checkpoints = train_data, saved
        if self.start_epoch and self.start_epoch >= self.epochs:  # a resumed run with no epoch left: nothing to train
            return self.best_valid_score, self.best_valid_result
        result = super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        if saved and self._trained_epoch is not None and self._trained_epoch != self.last_saved_epoch:
            self.save_last_checkpoint(self._trained_epoch)
        return result

    def _valid_epoch(self, valid_data, show_progress=False):
        score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        self.valid_curve.append([self._trained_epoch, sum(self.epoch_seconds), float(score)])
        return score, result

    @property
    def stopped_by(self):
        """Why training ended: 'patience' (early stopping), 'fixed' (a set number of epochs, validated
        at most once, as the original GRU4Rec trains), or 'cap' (the epoch limit cut it short)."""
        if self.cur_step > self.stopping_step:
            return "patience"
        if self.eval_step <= 0 or self.eval_step >= self.epochs:
            return "fixed"
        return "cap"

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if self._keep_checkpoints and self._trained_epoch is not None:  # the previous epoch is done
            self.save_last_checkpoint(self._trained_epoch)
        start = time.perf_counter()
        loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        self.epoch_seconds.append(time.perf_counter() - start)
        self._trained_epoch = epoch_idx
        return loss

    def resume_checkpoint(self, resume_file):
        """RecBole's API, made safe: continue from a last checkpoint (the loader state is not restored)."""
        self.resume(str(resume_file), None)

    def _load_model_checkpoint(self, path):
        checkpoint = load_checkpoint(path, self.device)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        return checkpoint

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False, per_target=None):
        """RecBole's evaluation; with ``per_target=k`` also each target's reciprocal rank and hit at
        k, keyed by user, item and occurrence, for paired tests: (result, per-target dict)."""
        if eval_data and load_best_model:
            checkpoint_file = model_file or self.saved_model_file
            self._load_model_checkpoint(checkpoint_file)
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        if not per_target:
            return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        collector, targets = self.eval_collector, PerTargetRanks(eval_data._dataset, per_target)

        def collect(scores, interaction, positive_u, positive_i):  # RecBole's, plus each target's rank
            type(collector).eval_batch_collect(collector, scores, interaction, positive_u, positive_i)
            targets.add(scores, interaction, positive_u, positive_i)

        collector.eval_batch_collect = collect
        try:
            result = super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        finally:
            del collector.eval_batch_collect
        return result, targets.as_dict()


class _SessionParallelEpochs(Trainer):
    """RecBole's trainer (early stopping, evaluation, checkpoints, logging) with GRU4Rec's epoch.

    An epoch walks the session-parallel steps of ``SessionParallelDataLoader`` with hidden
    states carried between steps, and optimises with Adagrad-with-momentum that updates only
    the embedding rows a step touched. The reported train loss is the mean over steps.
    """

    def _build_optimizer(self, **kwargs):
        if self.config["weight_decay"]:
            self.logger.warning("weight_decay is ignored by GRU4RecPlus (GRU4Rec regularises through dropout)")
        return IndexedAdagradM(self.model.parameters(), lr=self.learning_rate, momentum=self.config["momentum"],
                               compile=bool(self.config["compile"]))

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self.model.train()
        self.model.reset_session_state()
        fused = loss_func is None and self.model.fused  # the model's fused step (train_step), else autograd's
        loss_func = loss_func or self.model.calculate_loss
        steps = iter(train_data)
        if show_progress:
            steps = tqdm(steps, total=len(train_data), ncols=100, desc=set_color(f"Train {epoch_idx:>5}", "pink"))
        total, n_steps = torch.zeros((), dtype=torch.float64, device=self.device), 0  # summed on the device, read once an epoch
        for batch in steps:
            self.optimizer.zero_grad(set_to_none=True)
            if fused:
                loss = self.model.train_step(batch, self.optimizer)
            else:
                loss = loss_func(batch)
                loss.backward()
                self.optimizer.step()
            total += loss.detach()
            n_steps += 1
        total = float(total)
        if math.isnan(total):
            raise PluginError(f"the training loss became NaN in epoch {epoch_idx}: lower learning_rate "
                              f"(now {self.learning_rate}) or check the data")
        return total / max(n_steps, 1)


class SessionParallelTrainer(RunCheckpointMixin, _SessionParallelEpochs):
    """The trainer of the plugin's session-parallel models, with this run's checkpoints."""


def is_session_parallel(model_class):
    """Whether a model trains on session-parallel steps (the plugin's models) or RecBole's loaders."""
    return getattr(model_class, "session_parallel", False)


def get_trainer_class(model_class):
    """The trainer for a model: session-parallel for plugin models, RecBole's own (made safe) otherwise."""
    if is_session_parallel(model_class):
        return SessionParallelTrainer
    recbole_trainer = get_trainer(model_class.type, model_class.__name__)
    return type(recbole_trainer.__name__, (RunCheckpointMixin, recbole_trainer), {})
