"""Trainers: session-parallel training for the plugin's models, safe checkpoint loading for all.

RecBole 1.2.1's ``Trainer.evaluate`` and ``resume_checkpoint`` call ``torch.load`` without
``weights_only``; since torch 2.6 that defaults to True and fails on RecBole's checkpoints,
which pickle the ``Config`` (recbole/trainer/trainer.py, lines 323 and 583).
``SafeCheckpointMixin`` loads checkpoints itself and is mixed into every trainer we run.
"""

import math

import torch
from recbole.trainer import Trainer
from recbole.utils import get_trainer, set_color
from tqdm import tqdm

from .optim import IndexedAdagradM


def load_checkpoint(path, device="cpu"):
    """Load a RecBole checkpoint (it pickles the Config: only load files you wrote yourself)."""
    return torch.load(path, map_location=device, weights_only=False)


class SafeCheckpointMixin:
    """Loads checkpoints with ``weights_only=False`` instead of RecBole's failing ``torch.load``."""

    def _load_model_checkpoint(self, path):
        checkpoint = load_checkpoint(path, self.device)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        return checkpoint

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if eval_data and load_best_model:
            checkpoint_file = model_file or self.saved_model_file
            self._load_model_checkpoint(checkpoint_file)
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    def resume_checkpoint(self, resume_file):
        self.saved_model_file = str(resume_file)
        checkpoint = self._load_model_checkpoint(self.saved_model_file)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")


class SessionParallelTrainer(SafeCheckpointMixin, Trainer):
    """RecBole's trainer (early stopping, evaluation, checkpoints, logging) with GRU4Rec's epoch.

    An epoch walks the session-parallel steps of ``SessionParallelDataLoader`` with hidden
    states carried between steps, and optimises with Adagrad-with-momentum that updates only
    the embedding rows a step touched. The reported train loss is the mean over steps.
    """

    def _build_optimizer(self, **kwargs):
        if self.config["weight_decay"]:
            self.logger.warning("weight_decay is ignored by GRU4RecPlus (GRU4Rec regularises through dropout)")
        return IndexedAdagradM(self.model.parameters(), lr=self.learning_rate, momentum=self.config["momentum"])

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self.model.train()
        self.model.reset_session_state()
        loss_func = loss_func or self.model.calculate_loss
        steps = iter(train_data)
        if show_progress:
            steps = tqdm(steps, total=len(train_data), ncols=100, desc=set_color(f"Train {epoch_idx:>5}", "pink"))
        total, n_steps = 0.0, 0
        for batch in steps:
            self.optimizer.zero_grad(set_to_none=True)
            loss = loss_func(batch)
            loss.backward()
            self.optimizer.step()
            total += loss.item()
            n_steps += 1
            if math.isnan(total):
                raise ValueError("Training loss is nan: lower learning_rate or check the data")
        return total / max(n_steps, 1)


def is_session_parallel(model_class):
    """Whether a model trains on session-parallel steps (the plugin's models) or RecBole's loaders."""
    return getattr(model_class, "session_parallel", False)


def get_trainer_class(model_class):
    """The trainer for a model: session-parallel for plugin models, RecBole's own (made safe) otherwise."""
    if is_session_parallel(model_class):
        return SessionParallelTrainer
    recbole_trainer = get_trainer(model_class.type, model_class.__name__)
    return type(recbole_trainer.__name__, (SafeCheckpointMixin, recbole_trainer), {})
