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
from .board import build_board, choose_point, csv_text, markdown
from .cells import CellStore, DatasetCache, run_cell_safely
from .experiment import cell_key, load_experiment, resolved_config
from .plot import plot_board


def plan(experiment):
    """Every cell that may run, with its resolved config and key, checked before any runs: each
    model exists, each option is valid, each dataset's files are there, and the models of a
    dataset are evaluated on the same split."""
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
        planned.append((cell, config, cell_key(cell)))
    keys = [key for _, _, key in planned]
    if len(set(keys)) != len(keys):
        twin = next(c for c, _, k in planned if keys.count(k) > 1)
        raise PluginError(f"two cells would run exactly the same configuration ({twin.name} and another): "
                          f"give the labels different options")
    return planned


def stages(experiment, planned):
    """The cells in the order they run, label by label: (search cells, final cells of a choice).

    A label without ``tune_seeds`` (or without a grid) runs every cell in its search stage; with
    them, its grid points run on the tune seeds, and ``final(records)`` gives the chosen point's
    cells on the other seeds, once the search's records are in."""
    by_label = {}
    for item in planned:
        by_label.setdefault((item[0].dataset, item[0].label), []).append(item)
    for (dataset, label), items in by_label.items():
        tune = set(experiment.search_seeds(label))
        search = [item for item in items if item[0].seed in tune]

        def final(records, items=items, tune=tune):
            point = choose_point(records, experiment.ranking_metric.lower(), tune)
            if point is None:
                return []
            return [item for item in items if item[0].seed not in tune and item[0].grid_point == point]

        yield search, final


def count_cells(experiment):
    """How many cells a sweep runs in all: every point on the tune seeds, the chosen one on the rest."""
    total = 0
    for dataset in experiment.datasets:
        for label, entry in experiment.models.items():
            points = 1
            for values in entry.get("grid", {}).values():
                points *= len(values)
            tune = experiment.search_seeds(label)
            total += points * len(tune) + len(experiment.seeds) - len(tune)
    return total


class _NoRun:
    """Runs nothing: the board is written from the cells already in the folder."""

    def run(self, experiment, pending, on_done):
        pass

    def close(self):
        pass


class _Local:
    """One cell after another in this process, each dataset built once."""

    def __init__(self, output_dir, keep_checkpoints):
        self.output_dir, self.keep_checkpoints, self.cache = output_dir, keep_checkpoints, DatasetCache()

    def run(self, experiment, pending, on_done):
        for cell, config, key in pending:
            config["log_dir"] = os.path.join(self.output_dir, "logs")
            on_done(run_cell_safely(cell, config, key, experiment.ranking_cutoff, self.output_dir, self.cache,
                                    self.keep_checkpoints))

    def close(self):
        pass


def run_experiment(path, output_dir=None, executor="local", address=None, workers=None, keep_checkpoints=False,
                   report=print, ray_worker=None, run=True, labels=None):
    """Run what is missing of an experiment and write its board; returns (experiment, board, counts).
    ``run=False`` writes the board from the cells already there and runs none (``--no-run``);
    ``labels``: run only these model labels (``--labels``; the board still shows every label);
    ``ray_worker``: the Ray actor class (tests use one that fails on purpose)."""
    if executor != "ray" and (address is not None or workers is not None):
        raise PluginError("--address and --workers are options of --executor ray: add --executor ray or drop them")
    experiment = load_experiment(path)
    unknown = sorted(set(labels or ()) - set(experiment.models))
    if unknown:
        raise PluginError(f"--labels: '{unknown[0]}' is not a model label of {path} (its labels: "
                          f"{', '.join(experiment.models)})")
    output_dir = output_dir or os.path.join("leaderboards", experiment.name)
    planned = plan(experiment)
    store = CellStore(output_dir, warn=report)
    total = count_cells(experiment)
    report(f"{experiment.name}: {total} cells ({executor if run else 'none run: the board of the cells there'})")
    if not run:
        runner = _NoRun()
    elif executor == "ray":
        from .ray_executor import RayCells

        runner = RayCells(output_dir, address, workers, keep_checkpoints, worker_class=ray_worker)
    else:
        runner = _Local(output_dir, keep_checkpoints)
    counts = {"ran": 0}

    def on_done(record):
        store.save(record)  # the driver writes every cell file, wherever the cell ran
        counts["ran"] += 1
        outcome = "done" if record["status"] == "done" else f"failed: {record['error']}"
        point = ",".join(f"{k}={v}" for k, v in sorted(record["grid_point"].items()))
        report(f"[{counts['ran']}] {record['dataset']} / {record['label']}{f' [{point}]' if point else ''} / "
               f"seed {record['seed']}: {outcome}")

    needed = []

    def run_missing(items):
        needed.extend(items)
        pending = [item for item in items if store.load(item[2], item[1]) is None]
        if pending:
            runner.run(experiment, pending, on_done)

    try:
        for search, final in stages(experiment, planned):
            if labels and search[0][0].label not in labels:  # not run now: its cells there are shown
                chosen = final([store.load_any(key) for _, _, key in search])
                needed.extend(item for item in search + chosen if store.load_any(item[2]) is not None)
                continue
            run_missing(search)
            run_missing(final([store.load_any(key) for _, _, key in search]))
    finally:
        runner.close()
    records = [record for record in (store.load_any(key) for _, _, key in needed) if record is not None]
    board = build_board(experiment, records)
    write_board(experiment, board, output_dir)
    counts.update(cells=len(needed), failed=sum(r["status"] == "failed" for r in records))
    return experiment, board, counts


def write_board(experiment, board, output_dir):
    text = markdown(experiment, board)
    atomic_write(os.path.join(output_dir, "leaderboard.md"), lambda f: f.write(text.encode("utf-8")))
    table = csv_text(experiment, board)
    atomic_write(os.path.join(output_dir, "leaderboard.csv"), lambda f: f.write(table.encode("utf-8")))
    plot_board(experiment, board, os.path.join(output_dir, "leaderboard.png"))
    getLogger().info(f"board written to {output_dir}")
