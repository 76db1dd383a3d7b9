"""What makes one run its own: a unique id, its own log file, and files that are never half-written.

RecBole names a run's checkpoint by model and second, and its log file by model, dataset, second
and a hash of the config: two runs started together in one folder share both, and the final test
of one can reload the other's model. RecBole's logger is also global (``logging.basicConfig``
does nothing once the root logger has handlers), so a second run in one process writes into the
first run's file. Here every run gets an id (time + random part) that names its log, its
TensorBoard folder and its checkpoints, and each run replaces the root logger's handlers.
"""

import logging
import os
import random
import secrets
import tempfile
import time
from logging.handlers import MemoryHandler

import colorama
import colorlog
import numpy as np
import torch
from recbole.utils.logger import RemoveColorFilter, log_colors_config

from . import faults


def new_run_id():
    """Start time to the second plus a random part: unique even for runs started together."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(4)


def run_name(config):
    """Model, dataset and run id: the stem of every file the run writes."""
    return f"{config['model']}-{config['dataset']}-{config['run_id']}"


def atomic_write(path, write):
    """Write ``path`` through ``write(file_object)`` into a temporary file beside it, then rename
    it into place: a kill at any moment leaves the previous file (or none), never a partial one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            write(faults.StopHalfway(f) if faults.should_stop("write", path) else f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def atomic_torch_save(state, path):
    atomic_write(path, lambda f: torch.save(state, f, pickle_protocol=4))


class RunLog:
    """The root logger for one run: to the console at once, to its own file only once the run has
    passed its checks (``open_file``), so that a run stopped by bad input leaves no log file."""

    def __init__(self, config, console=True):
        level = getattr(logging, str(config["state"] or "INFO").upper(), logging.INFO)
        root = logging.getLogger()
        for handler in list(root.handlers):  # a previous run's handlers (RecBole's logger is global)
            root.removeHandler(handler)
            handler.close()
        if console:
            colorama.init(autoreset=True)  # as RecBole: colour codes are stripped when the console is not a terminal
            stream = logging.StreamHandler()
            stream.setLevel(level)
            stream.setFormatter(colorlog.ColoredFormatter(
                "%(log_color)s%(asctime)-15s %(levelname)s  %(message)s", "%d %b %H:%M", log_colors=log_colors_config))
            root.addHandler(stream)
        self._buffer = MemoryHandler(capacity=1 << 30, flushLevel=logging.CRITICAL + 1)
        self._buffer.setLevel(level)
        root.setLevel(level)
        root.addHandler(self._buffer)
        self.path = os.path.join(config["log_dir"] or "log", config["model"], run_name(config) + ".log")
        self.level = level

    def open_file(self):
        """Start the run's log file, with everything logged so far."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        file_handler = logging.FileHandler(self.path)
        file_handler.setLevel(self.level)
        file_handler.setFormatter(logging.Formatter("%(asctime)-15s %(levelname)s  %(message)s", "%a %d %b %Y %H:%M:%S"))
        file_handler.addFilter(RemoveColorFilter())
        self._buffer.setTarget(file_handler)
        self._buffer.flush()
        root = logging.getLogger()
        root.removeHandler(self._buffer)
        self._buffer.close()
        root.addHandler(file_handler)  # RecBole names the run's TensorBoard folder after this file


def random_states():
    """Every random generator a run draws from, to resume it exactly."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states):
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
