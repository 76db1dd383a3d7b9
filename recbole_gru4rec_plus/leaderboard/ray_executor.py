"""Cells as Ray tasks, on a local Ray (default) or an existing cluster (``address``).

Each worker is an actor that keeps the datasets it has built and works in a scratch folder of
its own machine (logs, checkpoints): nothing is assumed to be shared with the driver. An actor
sends each cell's record back and the driver writes the cell file. Cells are handed out one at a
time, each to a free actor that already holds its dataset where one is free, so that a dataset is
prepared once per worker; an actor that dies makes its cell a failed one (with a one-line error)
and is replaced, and the sweep goes on.
"""

import os

from ..errors import PluginError


class RayCells:
    """Runs batches of cells on a pool of ``worker_class`` actors (``run``), until ``close``."""

    def __init__(self, output_dir, address=None, workers=None, keep_checkpoints=False, worker_class=None):
        try:
            import ray
        except ImportError:  # ray is a dependency, but say what to do if it is broken
            raise PluginError("--executor ray needs ray (pip install ray==2.6.3)") from None
        self.ray, self.keep_checkpoints, self.actors = ray, keep_checkpoints, {}
        self.worker_class = worker_class or _CellWorker
        self.started_here = not ray.is_initialized()
        if self.started_here:
            options = {"address": address} if address else {"num_cpus": workers or os.cpu_count()}
            ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True, **options)
        self.n_workers = workers or max(1, int(ray.available_resources().get("CPU", 1)))

    def _new_actor(self):
        return self.ray.remote(num_cpus=1, max_restarts=0)(self.worker_class).remote()

    def run(self, experiment, pending, on_done):
        from .cells import failed_record

        ray, queue = self.ray, list(pending)
        while len(self.actors) < min(self.n_workers, len(queue)):
            self.actors[self._new_actor()] = set()  # an actor and the datasets it holds
        idle, running = list(self.actors), {}
        while queue or running:
            while queue and idle:
                actor = idle.pop()
                held = self.actors[actor]
                index = next((i for i, (cell, _, _) in enumerate(queue) if cell.dataset in held), 0)
                cell, config, key = queue.pop(index)
                held.add(cell.dataset)
                running[actor.run.remote(experiment, cell, config, key, self.keep_checkpoints)] = (actor, cell, key)
            ready, _ = ray.wait(list(running), num_returns=1)
            actor, cell, key = running.pop(ready[0])
            try:
                record = ray.get(ready[0])
                idle.append(actor)
            except ray.exceptions.RayError as error:  # the actor (or its machine) died: the cell failed
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                record = failed_record(cell, key, f"the Ray worker died ({type(error).__name__}: {first[:200]})")
                del self.actors[actor]
                if queue:
                    replacement = self._new_actor()
                    self.actors[replacement] = set()
                    idle.append(replacement)
            on_done(record)

    def close(self):
        if self.started_here:
            self.ray.shutdown()


class _CellWorker:
    """A Ray actor: runs cells, one thread each, in a scratch folder of its own, keeping the datasets
    it built, and returns each cell's record (the driver writes it)."""

    def __init__(self):
        import tempfile

        import torch

        from .cells import DatasetCache

        torch.set_num_threads(1)
        self.folder = tempfile.mkdtemp(prefix="gru4rec-plus-cells-")
        os.chdir(self.folder)  # RecBole writes log_tensorboard/ and saved/ into the working directory
        self.cache = DatasetCache()

    def run(self, experiment, cell, config, key, keep_checkpoints):
        from .cells import run_cell_safely

        config["log_dir"] = os.path.join(self.folder, "logs")
        return run_cell_safely(cell, config, key, experiment.ranking_cutoff, self.folder, self.cache, keep_checkpoints)

    def folder_and_pid(self):
        return self.folder, os.getpid()
