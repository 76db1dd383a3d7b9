"""The pipeline behind ``run/run.py``: config -> dataset -> split -> train -> evaluate.

The same steps as RecBole's ``run_recbole`` for every model, plugin or built-in, except that
plugin models train session-parallel on ``SessionParallelDataset`` (no prefix rows), and
checkpoints load on current PyTorch. RecBole's ``recbole.quick_start`` is not imported: it
imports ray at module level.
"""

import importlib
import os
import sys
import warnings
from logging import getLogger

import torch
from recbole.data.dataset import SequentialDataset
from recbole.data import data_preparation as recbole_data_preparation
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.data.utils import _create_sampler, get_dataloader
from recbole.utils import ModelType, init_seed, set_color

from .breakdown import breakdown_table, item_events, popularity_breakdown, training_supports
from .config import PluginConfig, read_value
from .data.dataset import CountsMixin, EventFileRowsMixin, EventFilesMixin, ExactTimesMixin, SessionParallelDataset
from .data.movielens import prepare_movielens
from .data.session_parallel import SessionParallelDataLoader
from .data.checks import DuplicateRowsMixin, check_atomic_files, check_prepared_data
from .errors import PluginError, RunInterrupted
from .options import check_values, check_writable
from .runs import RunLog, new_run_id
from .trainer import get_trainer_class, load_checkpoint

# RecBole's dataset code uses chained fillna(inplace=True) and groupby idioms that pandas 2 deprecates:
# they work under pandas < 3 (pinned) but warn on every run, about RecBole's code, not the user's data.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")


def dataset_class(config):
    """The dataset class for a model: the one a plugin model declares (``DATASET``), RecBole's
    choice otherwise (recbole.data.utils.create_dataset), each counting (and on request dropping)
    duplicate rows, each keeping exact times (``ExactTimesMixin``) and naming its counts (``CountsMixin``)."""
    base = getattr(config.model_class, "DATASET", None)
    if base is None:
        module = importlib.import_module("recbole.data.dataset")
        by_type = {ModelType.SEQUENTIAL: "SequentialDataset", ModelType.KNOWLEDGE: "KnowledgeBasedDataset"}
        base = getattr(module, config["model"] + "Dataset", None) or getattr(module, by_type.get(config["MODEL_TYPE"], "Dataset"))
    mixins = (CountsMixin, DuplicateRowsMixin) + (() if issubclass(base, ExactTimesMixin) else (ExactTimesMixin,))
    if config["benchmark_filename"] and not issubclass(base, EventFilesMixin) and issubclass(base, SequentialDataset):
        mixins += (EventFileRowsMixin,)  # inert for prefix-row files
    return type(base.__name__, (*mixins, base), {})


def create_dataset(config):
    if not config["benchmark_filename"]:  # MovieLens releases are converted once from the raw files in data_path
        prepare_movielens(os.path.dirname(os.path.normpath(config["data_path"])), config["dataset"])
    check_atomic_files(config)
    try:
        return dataset_class(config)(config)
    except ValueError as error:
        if "Some feat is empty" not in str(error):  # RecBole's way of saying that filtering left nothing
            raise
        filters = {key: config[key] for key in ("user_inter_num_interval", "item_inter_num_interval", "val_interval")}
        raise PluginError(f"dataset '{config['dataset']}' has no interactions left after filtering "
                          f"({', '.join(f'{k}={v}' for k, v in filters.items())}): loosen these filters") from None


EVAL_SCORES = 1 << 24  # scores (floats) one evaluation batch may hold: 64 MB


class BoundedFullSortEvalDataLoader(FullSortEvalDataLoader):
    """RecBole's full-sort evaluation with batches of at most ``EVAL_SCORES`` scores. RecBole
    bounds a general model's batches so (eval_batch_size scores), but gives a sequential model
    eval_batch_size rows whatever the number of items: 4096 x 37.5k items is a 614 MB score
    matrix (and its copies) for RSC15. Rankings do not depend on the batch."""

    def _init_batch_size_and_step(self):
        super()._init_batch_size_and_step()
        if self.config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
            rows = max(1, min(self.step, EVAL_SCORES // max(self._dataset.item_num, 1)))
            self.step = rows
            self.set_batch_size(rows)


def _evaluation_loader(config, phase):
    loader = get_dataloader(config, phase)
    return BoundedFullSortEvalDataLoader if loader is FullSortEvalDataLoader else loader


def evaluation_samplers(config, dataset, built):
    """RecBole's samplers of the validation and test phases, built only for sampled candidates.

    RecBole's ``create_samplers`` builds them for full ranking too (distribution 'uniform',
    sample_num 'none'), and a training phase's: sets of used items per user, 3.3 GB and 1.6 GB
    for RSC15's 8M sessions, which a sequential model's full ranking never reads (RecBole's
    FullSortEvalDataLoader takes used items from the sampler for general models only).
    """
    base, samplers = None, []
    for phase in ("valid", "test"):
        args = config[f"{phase}_neg_sample_args"]
        if args["sample_num"] == "none" and config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
            samplers.append(None)
            continue
        sampler = _create_sampler(dataset, built, args["distribution"], config["repeatable"], base_sampler=base)
        base = base or sampler
        samplers.append(sampler.set_phase(phase) if sampler else None)
    return samplers


def data_preparation(config, dataset):
    """Train/valid/test loaders: session- or user-parallel steps (as the model declares,
    ``TRAINING_UNIT``) for plugin models, RecBole's loaders otherwise."""
    if not isinstance(dataset, SessionParallelDataset):  # RecBole's own loaders
        return recbole_data_preparation(config, dataset)
    built = dataset.build()
    train, valid, test = built
    valid_sampler, test_sampler = evaluation_samplers(config, dataset, built)
    sessions = train.training_sessions
    # with in-batch negatives only, a row needs another row: the epoch ends below two (as in the original)
    min_active = 1 if config["n_sample"] else 2
    unit = config.model_class.TRAINING_UNIT
    train_data = SessionParallelDataLoader(config, train, sessions, shuffle=config["shuffle"], min_active=min_active, unit=unit)
    valid_data = _evaluation_loader(config, "valid")(config, valid, valid_sampler, shuffle=False)
    test_data = _evaluation_loader(config, "test")(config, test, test_sampler, shuffle=False)
    getLogger().info(
        set_color("[Training]: ", "pink")
        + f"{len(sessions.offsets) - 1} sessions" + (f" of {sessions.n_users} users" if unit == "user" else "")
        + f", {sessions.n_targets} targets, {config['train_batch_size']} parallel {unit}s; "
        + f"[Evaluation]: {len(valid)} valid and {len(test)} test targets"
    )
    return train_data, valid_data, test_data


def set_threads(config):
    """The run's torch threads, and anomaly detection as the run asks: off unless ``detect_anomaly``,
    whatever imported RecBole's sine.py (which turns it on for the process) and when."""
    if config["threads"] is not None:
        torch.set_num_threads(config["threads"])
    torch.autograd.set_detect_anomaly(bool(config["detect_anomaly"]))


def resumed_config(path, config_dict=None):
    """The config of the run that wrote the last checkpoint ``path``; only ``epochs`` may change."""
    if not os.path.isfile(path):
        raise PluginError(f"checkpoint '{path}' does not exist: give the -last.pth file a run printed")
    try:
        checkpoint = load_checkpoint(path)
    except Exception as error:  # a truncated or foreign file: say so in one line
        raise PluginError(f"checkpoint '{path}' cannot be read ({type(error).__name__}): give a -last.pth file "
                          f"written by run/run.py") from None
    config = checkpoint.get("config") if isinstance(checkpoint, dict) else None
    if config is None or "random_states" not in checkpoint or "run_id" not in config.final_config_dict:
        raise PluginError(f"'{path}' is not a last checkpoint of a plugin run: resume from the -last.pth file "
                          f"that the run printed")
    changes = {key: read_value(value) if isinstance(value, str) else value for key, value in (config_dict or {}).items()}
    others = sorted(set(changes) - {"epochs", "threads", "show_progress"})
    if others:
        raise PluginError(f"--resume continues a run as it was configured; only --epochs can change, not {', '.join(others)}")
    for key, value in changes.items():
        config[key] = value
    check_values(config, config.model_class)
    config.compatibility_settings()  # RecBole's numpy aliases, set when a Config is built, not when one is unpickled
    return config


def check_run_paths(config, saved):
    """Every folder the run writes to can be written, before any work."""
    check_writable(config["log_dir"] or "log", "log_dir" if config["log_dir"] else "log folder (in the working directory)")
    check_writable("log_tensorboard", "TensorBoard folder (in the working directory)")
    if saved:
        check_writable(config["checkpoint_dir"], "checkpoint_dir")


def run(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, resume=None):
    """Train ``model`` on ``dataset`` with early stopping, then evaluate on valid and test.

    ``resume``: the last checkpoint of an earlier run to continue (its own config; ``config_dict``
    may only raise ``epochs``). Returns RecBole's result dict (best_valid_score,
    valid_score_bigger, best_valid_result, test_result) with the run's id and checkpoint files.
    A KeyboardInterrupt during training comes out as ``RunInterrupted`` naming the last checkpoint.
    """
    if resume:
        config = resumed_config(resume, config_dict)
    else:
        config = PluginConfig(model, dataset, config_file_list, config_dict)
    return run_config(config, saved=saved, resume=resume)


def run_config(config, saved=True, resume=None, dataset=None, per_target=None, console_log=True):
    """``run`` for a built config. ``dataset``: a dataset already built for this config (the
    leaderboard reuses one per worker); ``per_target``: a cutoff k, to return each test target's
    reciprocal rank and hit at k as well (``per_target`` in the result); ``console_log``: False
    to log to the run's file only."""
    if "run_id" not in config.final_config_dict:
        config["run_id"] = new_run_id()
    check_run_paths(config, saved)
    set_threads(config)
    init_seed(config["seed"], config["reproducibility"])
    log = RunLog(config, console=console_log)
    logger = getLogger()
    for key, models in getattr(config, "unused_options", {}).items():
        shown = ", ".join(models[:4]) + (f" and {len(models) - 4} other models" if len(models) > 4 else "")
        logger.warning(f"option {key} is read by {shown}, not by {config['model']}: it has no effect here")

    dataset = dataset if dataset is not None else create_dataset(config)
    events = item_events(dataset) if config["breakdown"] else None  # before RecBole's prefix rows replace them
    train_data, valid_data, test_data = data_preparation(config, dataset)
    check_prepared_data(config, dataset, train_data)
    log.open_file()  # the run has passed its checks: from here on it has its own log file
    logger.info(sys.argv)
    logger.info(config)
    logger.info(dataset)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = config.model_class(config, train_data.dataset).to(config["device"])
    logger.info(model)
    trainer = get_trainer_class(config.model_class)(config, model)
    if resume:
        trainer.resume(resume, train_data)
    try:
        best_valid_score, best_valid_result = trainer.fit(
            train_data, valid_data, saved=saved, show_progress=config["show_progress"]
        )
    except KeyboardInterrupt:
        last = trainer.last_checkpoint_file if saved and trainer.last_saved_epoch is not None else None
        raise RunInterrupted(last, trainer.last_saved_epoch) from None
    cutoff = per_target or (_ranking_cutoff(config) if config["breakdown"] else None)
    test = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"], per_target=cutoff)
    test_result, targets = test if cutoff else (test, None)
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    breakdown = None
    if config["breakdown"]:
        breakdown = popularity_breakdown(targets, training_supports(events, valid_data, test_data), config["breakdown_bins"])
        logger.info(set_color("test by target popularity", "yellow") + "\n" + breakdown_table(breakdown))
    return {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "run_id": config["run_id"],
        "log_file": log.path,
        "saved_model_file": trainer.saved_model_file if saved else None,
        "last_checkpoint_file": trainer.last_checkpoint_file if saved else None,
        "epochs": config["epochs"],
        "best_epoch": trainer.best_epoch,
        "epochs_trained": len(trainer.epoch_seconds),
        "train_seconds": sum(trainer.epoch_seconds),
        "valid_curve": trainer.valid_curve,
        "stopped_by": trainer.stopped_by,
        "per_target": targets,
        "breakdown": breakdown,
    }


def _ranking_cutoff(config):
    """The cutoff of the validation metric (MRR@20 -> 20), else the largest of topk."""
    metric = str(config["valid_metric"])
    return int(metric.split("@")[1]) if "@" in metric else max(config["topk"])


def load_data_and_model(model_file):
    """RecBole's ``load_data_and_model`` for any model, on current PyTorch.

    Returns config, model, dataset, train_data, valid_data, test_data.
    """
    checkpoint = load_checkpoint(model_file)
    config = checkpoint["config"]
    config.compatibility_settings()  # RecBole's numpy aliases, set when a Config is built, not when one is unpickled
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data.dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data
