"""Running one cell and keeping its result as a file: DIR/cells/<key>.json, written atomically.

A cell's key is a hash of what the experiment file says of it (``experiment.cell_key``), so a
changed option makes a new cell and a finished one is not run again, unless its stored resolved
config disagrees with today's (a changed default) or its file cannot be read. A failed cell is
kept too, with its one-line error, so that the board can say which cells are missing and why.
"""

import copy
import json
from logging import getLogger
import os
import shutil
import subprocess
import tempfile
import time

from ..errors import PluginError
from ..runs import atomic_write
from .experiment import comparable_config, stale_keys

RECORD_VERSION = 2
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def code_version():
    """``git describe`` of the checkout the plugin runs from, ``-dirty`` when files outside docs/
    changed (a sweep rewrites the boards under docs/boards as it goes: they are its output, not
    its code); None outside a git checkout."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=_PACKAGE_DIR, capture_output=True, text=True, timeout=10)

    try:
        described = git("describe", "--always", "--tags")
        if described.returncode or not described.stdout.strip():
            return None
        changed = git("diff", "--quiet", "HEAD", "--", ":(top)", ":(top,exclude)docs").returncode == 1
    except (OSError, subprocess.SubprocessError):
        return None
    return described.stdout.strip() + ("-dirty" if changed else "")


def machine(threads):
    """Cores, processor and torch threads of the machine a cell ran on."""
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "threads": threads}


def peak_rss_reset():
    """Start measuring this process's peak resident memory anew (Linux: /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib():
    """Peak resident memory since the last reset (the whole process's if it could not be reset)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class DatasetCache:
    """Datasets built once per process and copied for each cell, keyed as RecBole keys its own
    saved datasets (its dataset options, seed and repeatable) plus the dataset class."""

    def __init__(self):
        self._datasets = {}

    def get(self, config):
        from recbole.utils.argument_list import dataset_arguments

        from ..quick_start import create_dataset, dataset_class

        keys = dataset_arguments + ["seed", "repeatable", "session_gap", "SESSION_ID_FIELD", "drop_duplicate_rows"]
        key = (dataset_class(config).__name__, config["dataset"],
               json.dumps({k: config[k] for k in keys}, sort_keys=True, default=str))
        if key not in self._datasets:
            self._datasets[key] = create_dataset(config)
        return copy.deepcopy(self._datasets[key])


def run_cell(cell, config, key, ranking_cutoff, output_dir, cache, keep_checkpoints=False):
    """Train and test one cell; returns its record (and writes nothing: see CellStore.save)."""
    from ..quick_start import run_config

    config.compatibility_settings()  # RecBole's numpy aliases: set when a Config is built, not when one is unpickled
    checkpoint_dir = os.path.join(output_dir, "checkpoints") if keep_checkpoints else tempfile.mkdtemp(prefix="cell-")
    config["checkpoint_dir"] = checkpoint_dir
    config["show_progress"] = False
    measured_alone = peak_rss_reset()  # else the peak would be the whole sweep's: not recorded
    started = time.time()
    try:
        result = run_config(config, saved=True, dataset=cache.get(config), per_target=ranking_cutoff, console_log=False)
    finally:
        if not keep_checkpoints:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
    epochs = max(result["epochs_trained"], 1)
    import torch

    return {
        **_identity(cell, key, "done"),
        "valid": dict(result["best_valid_result"] or {}), "test": dict(result["test_result"] or {}),
        "best_epoch": result["best_epoch"], "epochs_trained": result["epochs_trained"], "epochs": config["epochs"],
        "stopped_by": result["stopped_by"], "valid_curve": result["valid_curve"],
        "train_seconds": result["train_seconds"], "seconds_per_epoch": result["train_seconds"] / epochs,
        "wall_seconds": time.time() - started, "peak_rss_mib": peak_rss_mib() if measured_alone else None,
        "run_id": result["run_id"], "log_file": os.path.abspath(result["log_file"]),
        "per_target": result["per_target"], "breakdown": result["breakdown"],
        "config": comparable_config(config), "code_version": code_version(), "machine": machine(torch.get_num_threads()),
    }


def _identity(cell, key, status):
    return {"version": RECORD_VERSION, "key": key, "status": status, "dataset": cell.dataset, "label": cell.label,
            "model": cell.model, "seed": cell.seed, "grid_point": cell.grid_point, "options": cell.options}


def run_cell_safely(cell, config, key, ranking_cutoff, output_dir, cache, keep_checkpoints=False):
    """``run_cell``, with a failure kept as a record (its one-line error; the traceback of an
    unexpected one goes to the log) so that the rest of the sweep goes on."""
    try:
        return run_cell(cell, config, key, ranking_cutoff, output_dir, cache, keep_checkpoints)
    except PluginError as error:
        return failed_record(cell, key, str(error))
    except Exception as error:  # a bug or a fault in one cell must not stop the sweep
        getLogger().exception(f"{cell.name} failed")
        return failed_record(cell, key, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")


def failed_record(cell, key, error):
    return {**_identity(cell, key, "failed"), "error": error}


class CellStore:
    """The finished (and failed) cells of an output folder."""

    def __init__(self, output_dir, warn=None):
        self.folder, self.warn = os.path.join(output_dir, "cells"), warn or getLogger().warning
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as error:
            raise PluginError(f"cannot write the output folder '{output_dir}' ({error.strerror or error}): "
                              f"choose another --output") from None

    def path(self, key):
        return os.path.join(self.folder, f"{key}.json")

    def load(self, key, config=None):
        """The record of a finished cell, or None if it is to run (again): not there, failed, of an
        older record version, unreadable (a warning names the file), or, given today's ``config``
        of the cell, resolved with other values on options both have (a warning names them)."""
        record = self.load_any(key)
        if record is None or record.get("status") != "done" or record.get("version") != RECORD_VERSION:
            return None
        changed = stale_keys(record, config) if config is not None else []
        if changed:
            self.warn(f"warning: cell {self.path(key)} ran with other values of {', '.join(changed[:5])}: it runs again")
            return None
        return record

    def load_any(self, key):
        """The stored record of a cell, done or failed, or None (an unreadable file is warned of)."""
        path = self.path(key)
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            self.warn(f"warning: cell file {path} cannot be read ({type(error).__name__}): the cell runs again")
            return None

    def save(self, record):
        text = json.dumps(record, indent=1, default=str).encode("utf-8")
        atomic_write(self.path(record["key"]), lambda f: f.write(text))
