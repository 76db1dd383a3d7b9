"""Cells as Ray tasks, on a local Ray (default) or an existing cluster (``address``).

Each worker is an actor that keeps the datasets it has built, and cells are handed to the
workers by dataset, so that a dataset is prepared once per worker, not once per cell. A worker
writes each cell's file itself, exactly as the local executor does.
"""

import os

from ..errors import PluginError


def run_on_ray(experiment, pending, output_dir, address=None, workers=None, keep_checkpoints=False, on_done=None):
    try:
        import ray
    except ImportError:  # ray is a dependency, but say what to do if it is broken
        raise PluginError("--executor ray needs ray (pip install ray==2.6.3)") from None
    if not pending:
        return
    started_here = not ray.is_initialized()
    if started_here:
        options = {"address": address} if address else {"num_cpus": workers or os.cpu_count()}
        ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True, **options)
    try:
        n_workers = workers or max(1, int(ray.available_resources().get("CPU", 1)))
        actors = [ray.remote(num_cpus=1)(_CellWorker).remote(output_dir) for _ in range(min(n_workers, len(pending)))]
        # cells ordered by dataset and cut into equal blocks, one per worker: a dataset is built by few workers
        by_dataset = {}
        for item in pending:
            by_dataset.setdefault(item[0].dataset, []).append(item)
        order = [item for group in by_dataset.values() for item in group]
        futures = {}
        for index, (cell, config, key) in enumerate(order):
            actor = actors[(index * len(actors)) // len(order)]
            futures[actor.run.remote(experiment, cell, config, key, keep_checkpoints)] = key
        remaining = list(futures)
        while remaining:
            ready, remaining = ray.wait(remaining, num_returns=1)
            record = ray.get(ready[0])
            if on_done:
                on_done(record)
    finally:
        if started_here:
            ray.shutdown()


class _CellWorker:
    """A Ray actor: runs cells, one thread each, keeping the datasets it built."""

    def __init__(self, output_dir):
        import torch

        from .cells import CellStore, DatasetCache

        torch.set_num_threads(1)
        self.output_dir, self.store, self.cache = output_dir, CellStore(output_dir), DatasetCache()

    def run(self, experiment, cell, config, key, keep_checkpoints):
        from .cells import run_cell_safely

        config["log_dir"] = os.path.join(self.output_dir, "logs")
        record = run_cell_safely(cell, config, key, experiment.ranking_cutoff, self.output_dir,
                                 self.cache, keep_checkpoints)
        self.store.save(record)
        return record
