"""An experiment file: datasets, models (with optional grids), seeds, settings and metrics,
checked as a whole before any cell runs, then expanded into cells.

    name: ml-100k-quick
    datasets: {ml-100k: {}}                     # dataset name -> options (config_files too)
    models:                                     # label -> options (config_files too); `model:` defaults to the label
      GRU4RecPlus: {}
      GRU4RecPlus-xe: {model: GRU4RecPlus, loss: cross-entropy}
      GRU4RecPlus-tuned: {model: GRU4RecPlus, grid: {learning_rate: [0.05, 0.1]}}
      SASRec: {}
    seeds: [1, 2, 3]
    tune_seeds: [1]                             # a grid is searched on these seeds, its choice run on every seed
    settings: {epochs: 50, stopping_step: 5}    # every cell; a model's own keys win
    metrics: [MRR@20, Recall@20]                # the board's columns; the first one ranks

Without ``eval_args`` in the file, every model of a RecBole dataset is evaluated by the sequential
protocol (``SEQUENTIAL_PROTOCOL``), and an imported dataset by the eval_args of its own YAML.
"""

import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field

import yaml

from ..errors import PluginError
from ..resources import PROPERTIES_DIR

TOP_LEVEL_KEYS = ("name", "datasets", "models", "seeds", "tune_seeds", "settings", "metrics")
# the split every model of a RecBole dataset gets when the experiment names none: each user's history
# in time order, the last event test, the one before it validation, ranked against every item
SEQUENTIAL_PROTOCOL = {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"}
# keys that do not change what a cell computes: left out of its key
_NOT_PART_OF_A_CELL = {"run_id", "show_progress", "state", "threads", "checkpoint_dir", "log_wandb", "wandb_project",
                       "device", "gpu_id", "use_gpu", "config_files", "log_dir"}
_PATHS = {"data_path"}  # where RecBole's own datasets are depends on the installation


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML mappings with a repeated key are an error (PyYAML keeps the last one silently);
    merge keys (``<<: *anchor``) share options between entries, the entry's own keys winning."""


def _mapping_without_duplicates(loader, node):
    keys = [loader.construct_object(key, deep=True) for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge"]
    repeated = sorted({str(key) for key in keys if keys.count(key) > 1})
    if repeated:
        raise PluginError(f"line {node.start_mark.line + 1}: '{repeated[0]}' is given twice in one mapping; "
                          f"give each label or key once")
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


@dataclass(frozen=True)
class Cell:
    """One run: a dataset, a model label (and grid point), a seed, and every option it runs with."""

    dataset: str
    label: str
    seed: int
    model: str
    config_files: tuple
    options: dict = field(hash=False)
    grid_point: dict = field(default_factory=dict, hash=False)

    @property
    def name(self):
        point = ",".join(f"{k}={v}" for k, v in sorted(self.grid_point.items()))
        return f"{self.dataset} / {self.label}{f' [{point}]' if point else ''} / seed {self.seed}"


@dataclass
class Experiment:
    name: str
    datasets: dict
    models: dict
    seeds: list
    settings: dict
    metrics: list
    path: str = ""
    tune_seeds: list = None  # the seeds a grid is searched on (None: every seed)
    default_protocol: tuple = ()  # the datasets evaluated by SEQUENTIAL_PROTOCOL because the file names no eval_args

    def search_seeds(self, label):
        """The seeds a label's grid points run on before one is chosen (every seed without a grid)."""
        if self.models[label].get("grid") and self.tune_seeds:
            return [seed for seed in self.seeds if seed in self.tune_seeds]
        return list(self.seeds)

    @property
    def ranking_metric(self):
        return self.metrics[0]

    @property
    def ranking_cutoff(self):
        """k of the ranking metric (MRR@20 -> 20): the cutoff of the per-target values."""
        return int(self.ranking_metric.split("@")[1])

    def cells(self):
        """Every (dataset, label, grid point, seed) that may run, in file order: with ``tune_seeds``,
        the runner runs a grid's points on those seeds and only its chosen point on the others."""
        for dataset, dataset_options in self.datasets.items():
            files = tuple(dataset_options.get("config_files", ()))
            data_options = {k: v for k, v in dataset_options.items() if k != "config_files"}
            if dataset in self.default_protocol:
                data_options = {"eval_args": SEQUENTIAL_PROTOCOL, **data_options}
            for label, entry in self.models.items():
                grid = entry.get("grid", {})
                fixed = {k: v for k, v in entry.items() if k not in ("model", "grid", "config_files")}
                model_files = files + tuple(entry.get("config_files", ()))
                for values in itertools.product(*grid.values()):
                    point = dict(zip(grid, values))
                    for seed in self.seeds:
                        options = {**metric_settings(self.metrics), **self.settings, **data_options, **fixed, **point,
                                   "seed": seed}
                        yield Cell(dataset, label, seed, entry.get("model", label), model_files, options, point)


def _resolve_files(paths, base, where):
    if isinstance(paths, str):
        paths = [part for part in paths.split(",") if part]
    if not isinstance(paths, (list, tuple)):
        raise PluginError(f"{where}: config_files must be a list of YAML files")
    resolved = []
    for path in paths:
        local = path if os.path.isabs(path) else os.path.join(base, path)
        resolved.append(local if os.path.exists(local) else path)  # else the plugin's own (paper/...)
    return resolved


def load_experiment(path):
    """Read and check an experiment file: one PluginError for the first problem found."""
    if not os.path.isfile(path):
        raise PluginError(f"experiment file '{path}' does not exist: give a YAML file such as experiments/ml-100k.yaml")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise PluginError(f"experiment file '{path}' is not valid YAML{line}: {getattr(error, 'problem', error)}") from None
    if not isinstance(data, dict):
        raise PluginError(f"experiment file '{path}' must be a mapping with {', '.join(TOP_LEVEL_KEYS)}")
    unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise PluginError(f"experiment file '{path}': unknown top-level key '{unknown[0]}'; the keys are "
                          f"{', '.join(TOP_LEVEL_KEYS)}")
    base = os.path.dirname(os.path.abspath(path))
    datasets = data.get("datasets") or {}
    models = data.get("models") or {}
    seeds = data.get("seeds")
    if not isinstance(datasets, dict) or not datasets:
        raise PluginError(f"experiment file '{path}': datasets is empty: name at least one dataset (e.g. ml-100k: {{}})")
    if not isinstance(models, dict) or not models:
        raise PluginError(f"experiment file '{path}': models is empty: name at least one model (e.g. GRU4RecPlus: {{}})")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise PluginError(f"experiment file '{path}': seeds must be a non-empty list of integers, e.g. [1, 2, 3]")
    if len(set(seeds)) != len(seeds):
        raise PluginError(f"experiment file '{path}': seed {next(s for s in seeds if seeds.count(s) > 1)} is given twice")
    tune_seeds = data.get("tune_seeds")
    if tune_seeds is not None and (not isinstance(tune_seeds, list) or not tune_seeds
                                   or not all(isinstance(s, int) and not isinstance(s, bool) for s in tune_seeds)):
        raise PluginError(f"experiment file '{path}': tune_seeds must be a non-empty list of integers, e.g. [1]")
    if tune_seeds is not None and set(tune_seeds) - set(seeds):
        raise PluginError(f"experiment file '{path}': tune_seeds {sorted(set(tune_seeds) - set(seeds))} are not in "
                          f"seeds {seeds}: tune on some of the board's seeds")
    settings = data.get("settings") or {}
    if not isinstance(settings, dict):
        raise PluginError(f"experiment file '{path}': settings must be a mapping of options")
    checked_datasets = {}
    for name, options in datasets.items():
        if options is not None and not isinstance(options, dict):
            raise PluginError(f"experiment file '{path}': dataset '{name}' must map to options ({{}} for none), "
                              f"not {options!r}")
        options = dict(options or {})
        if "config_files" in options:
            options["config_files"] = _resolve_files(options["config_files"], base, f"dataset '{name}'")
        checked_datasets[str(name)] = options
    checked_models = {}
    for label, entry in models.items():
        if entry is not None and not isinstance(entry, dict):
            raise PluginError(f"experiment file '{path}': model '{label}' must map to options ({{}} for none), "
                              f"not {entry!r}")
        entry = dict(entry or {})
        if "config_files" in entry:
            entry["config_files"] = _resolve_files(entry["config_files"], base, f"model '{label}'")
        grid = entry.get("grid", {})
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            raise PluginError(f"experiment file '{path}': model '{label}': grid must map keys to non-empty lists "
                              f"of values, e.g. grid: {{learning_rate: [0.05, 0.1]}}")
        checked_models[str(label)] = entry
    metrics = data.get("metrics") or ["MRR@20", "Recall@20"]
    if not isinstance(metrics, list) or not all(isinstance(m, str) and "@" in m for m in metrics):
        raise PluginError(f"experiment file '{path}': metrics must list ranking metrics such as [MRR@20, Recall@20]")
    name = str(data.get("name") or os.path.splitext(os.path.basename(path))[0])
    named = "eval_args" in settings or any("eval_args" in entry for entry in checked_models.values())
    default_protocol = tuple(dataset for dataset, options in checked_datasets.items()
                             if not named and "eval_args" not in options and not _files_set_eval_args(dataset, options))
    return Experiment(name, checked_datasets, checked_models, seeds, settings, metrics, path, tune_seeds,
                      default_protocol)


def _files_set_eval_args(dataset, options):
    """Whether a dataset's own YAML files (its config_files, the plugin's properties/dataset/NAME.yaml)
    say how it is evaluated, as an imported session dataset's file does."""
    paths = list(options.get("config_files", ())) + [os.path.join(PROPERTIES_DIR, "dataset", f"{dataset}.yaml")]
    for path in paths:
        if not os.path.isfile(path):
            path = os.path.join(PROPERTIES_DIR, path)
        try:
            with open(path, encoding="utf-8") as f:
                if "eval_args" in (yaml.safe_load(f) or {}):
                    return True
        except (OSError, yaml.YAMLError):
            continue  # a missing or broken file is reported by the checks of the run itself
    return False


def metric_settings(metrics):
    """RecBole's metrics/topk/valid_metric for the board's metrics (the first one selects the epoch)."""
    names = list(dict.fromkeys(m.split("@")[0] for m in metrics))
    cutoffs = sorted({int(m.split("@")[1]) for m in metrics})
    return {"metrics": names, "topk": cutoffs, "valid_metric": metrics[0]}


def resolved_config(cell, experiment):
    """The cell's full PluginConfig (every default, file and option merged and checked)."""
    from ..config import PluginConfig

    try:
        return PluginConfig(cell.model, cell.dataset, list(cell.config_files), dict(cell.options))
    except PluginError as error:
        raise PluginError(f"{cell.name}: {error}") from None


def cell_key(cell):
    """A hash of what the experiment file says of a cell: model, dataset, options, and the contents
    of its config files' options. Defaults a later version adds do not change it; a cell whose stored config
    disagrees with today's on a key both have is run again (``stale_keys``)."""
    files = []
    for path in cell.config_files:  # their options, not their text: a comment (e.g. an import's source path) is no change
        local = path if os.path.isfile(path) else os.path.join(PROPERTIES_DIR, path)
        try:
            with open(local, encoding="utf-8") as f:
                options = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError):
            files.append(path)
            continue
        # where the files are on this machine is no part of a cell (an import writes its data_path)
        files.append({k: v for k, v in options.items() if k not in _PATHS and k not in _NOT_PART_OF_A_CELL}
                     if isinstance(options, dict) else options)
    text = json.dumps({"model": cell.model, "dataset": cell.dataset, "options": cell.options, "files": files},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def comparable_config(config):
    """The resolved options that decide what a cell computes, as text (paths and machine keys left out)."""
    return {k: json.dumps(v, sort_keys=True, default=str) for k, v in config.final_config_dict.items()
            if k not in _NOT_PART_OF_A_CELL and k not in _PATHS}


def stale_keys(record, config):
    """The options on which a stored cell and today's resolution of it disagree (keys both have)."""
    stored, current = record.get("config") or {}, comparable_config(config)
    return sorted(k for k in set(stored) & set(current) if stored[k] != current[k])
