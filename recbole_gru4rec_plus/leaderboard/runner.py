"""A sweep: check the experiment as a whole, run the cells not yet done (one after another, or as
Ray tasks), then write the board from the cell files.

    DIR/cells/<key>.json   one per cell (done or failed), written atomically
    DIR/logs/              one log file per cell
    DIR/leaderboard.md, .csv, .png
"""

import json
import os
from logging import getLogger

from ..errors import PluginError
from ..runs import atomic_write
from .board import build_board, csv_text, markdown
from .cells import CellStore, DatasetCache, run_cell_safely
from .experiment import cell_key, load_experiment, resolved_config
from .plot import plot_board


def plan(experiment):
    """Every cell with its resolved config and key, checked before any runs: each model exists,
    each option is valid, each dataset's files are there, and the models of a dataset are
    evaluated on the same split."""
    from ..data.checks import check_atomic_files
    from ..data.movielens import prepare_movielens

    planned, splits, checked = [], {}, set()
    for cell in experiment.cells():
        config = resolved_config(cell, experiment)
        if config["dataset"] not in checked:
            if not config["benchmark_filename"]:
                prepare_movielens(os.path.dirname(os.path.normpath(config["data_path"])), config["dataset"])
            try:
                check_atomic_files(config)
            except PluginError as error:
                raise PluginError(f"dataset '{cell.dataset}': {error}") from None
            checked.add(config["dataset"])
        split = json.dumps(config["eval_args"], sort_keys=True, default=str)
        first = splits.setdefault(cell.dataset, (cell.label, split))
        if split != first[1]:
            raise PluginError(f"dataset '{cell.dataset}': '{cell.label}' is evaluated on {config['eval_args']}, "
                              f"'{first[0]}' on {json.loads(first[1])}: set eval_args in settings so that every "
                              f"model is tested on the same targets")
        planned.append((cell, config, cell_key(config)))
    keys = [key for _, _, key in planned]
    if len(set(keys)) != len(keys):
        twin = next(c for c, _, k in planned if keys.count(k) > 1)
        raise PluginError(f"two cells would run exactly the same configuration ({twin.name} and another): "
                          f"give the labels different options")
    return planned


def run_local(experiment, pending, output_dir, keep_checkpoints=False, on_done=None):
    """One cell after another in this process, each dataset built once."""
    store, cache = CellStore(output_dir), DatasetCache()
    for cell, config, key in pending:
        config["log_dir"] = os.path.join(output_dir, "logs")
        record = run_cell_safely(cell, config, key, experiment.ranking_cutoff, output_dir, cache, keep_checkpoints)
        store.save(record)
        if on_done:
            on_done(record)


def run_experiment(path, output_dir=None, executor="local", address=None, workers=None, keep_checkpoints=False,
                   report=print):
    """Run what is missing of an experiment and write its board; returns (experiment, board, counts)."""
    experiment = load_experiment(path)
    output_dir = output_dir or os.path.join("leaderboards", experiment.name)
    planned = plan(experiment)
    store = CellStore(output_dir)
    pending = [(cell, config, key) for cell, config, key in planned if store.load(key) is None]
    report(f"{experiment.name}: {len(planned)} cells, {len(planned) - len(pending)} done before, {len(pending)} to run "
           f"({executor})")
    done = {"n": 0}

    def on_done(record):
        done["n"] += 1
        outcome = "done" if record["status"] == "done" else f"failed: {record['error']}"
        report(f"[{done['n']}/{len(pending)}] {record['dataset']} / {record['label']} / seed {record['seed']}: {outcome}")

    if executor == "ray":
        from .ray_executor import run_on_ray

        run_on_ray(experiment, pending, output_dir, address=address, workers=workers,
                   keep_checkpoints=keep_checkpoints, on_done=on_done)
    else:
        run_local(experiment, pending, output_dir, keep_checkpoints, on_done)
    records = [record for record in (store.load_any(key) for _, _, key in planned) if record is not None]
    board = build_board(experiment, records)
    write_board(experiment, board, output_dir)
    counts = {"cells": len(planned), "ran": len(pending), "failed": sum(r["status"] == "failed" for r in records)}
    return experiment, board, counts


def write_board(experiment, board, output_dir):
    text = markdown(experiment, board)
    atomic_write(os.path.join(output_dir, "leaderboard.md"), lambda f: f.write(text.encode("utf-8")))
    table = csv_text(experiment, board)
    atomic_write(os.path.join(output_dir, "leaderboard.csv"), lambda f: f.write(table.encode("utf-8")))
    plot_board(experiment, board, os.path.join(output_dir, "leaderboard.png"))
    getLogger().info(f"board written to {output_dir}")
