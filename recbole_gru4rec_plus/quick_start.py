"""The pipeline behind ``run/run.py``: config -> dataset -> split -> train -> evaluate.

The same steps as RecBole's ``run_recbole`` for every model, plugin or built-in, except that
plugin models train session-parallel on ``SessionParallelDataset`` (no prefix rows), and
checkpoints load on current PyTorch. RecBole's ``recbole.quick_start`` is not imported: it
imports ray at module level.
"""

import os
import sys
import warnings
from logging import getLogger

import torch
from recbole.data import create_dataset as recbole_create_dataset
from recbole.data import data_preparation as recbole_data_preparation
from recbole.data.utils import create_samplers, get_dataloader
from recbole.utils import init_logger, init_seed, set_color

from .config import PluginConfig
from .data.dataset import SessionParallelDataset
from .data.movielens import prepare_movielens
from .data.session_parallel import SessionParallelDataLoader
from .errors import PluginError
from .trainer import get_trainer_class, is_session_parallel, load_checkpoint

# RecBole's Dataset._fill_nan uses chained fillna(inplace=True): it works under pandas < 3 (pinned)
# but warns on every run; the warning is about RecBole's code, not the user's data.
warnings.filterwarnings("ignore", category=FutureWarning, module="recbole.data.dataset.dataset")


def check_dataset_files(config):
    """Fail early, with what to do, when the dataset's atomic files are not where RecBole looks."""
    data_path = config["data_path"]
    suffixes = config["benchmark_filename"] or [None]
    expected = [os.path.join(data_path, ".".join(filter(None, (config["dataset"], s, "inter")))) for s in suffixes]
    missing = [path for path in expected if not os.path.isfile(path)]
    if missing:
        raise PluginError(
            f"dataset '{config['dataset']}' not found: expected {', '.join(missing)}; put RecBole atomic files "
            f"there, or point --data_path at the folder that holds the '{config['dataset']}' folder"
        )


def create_dataset(config):
    if not config["benchmark_filename"]:  # MovieLens releases are converted once from the raw files in data_path
        prepare_movielens(os.path.dirname(os.path.normpath(config["data_path"])), config["dataset"])
    check_dataset_files(config)
    if is_session_parallel(config.model_class):
        return SessionParallelDataset(config)
    return recbole_create_dataset(config)


def data_preparation(config, dataset):
    """Train/valid/test loaders: session-parallel steps for plugin models, RecBole's loaders otherwise."""
    if not isinstance(dataset, SessionParallelDataset):
        return recbole_data_preparation(config, dataset)
    built = dataset.build()
    train, valid, test = built
    _, valid_sampler, test_sampler = create_samplers(config, dataset, built)
    sessions = train.training_sessions
    # with in-batch negatives only, a row needs another row: the epoch ends below two (as in the original)
    min_active = 1 if config["n_sample"] else 2
    train_data = SessionParallelDataLoader(config, train, sessions, shuffle=config["shuffle"], min_active=min_active)
    valid_data = get_dataloader(config, "valid")(config, valid, valid_sampler, shuffle=False)
    test_data = get_dataloader(config, "test")(config, test, test_sampler, shuffle=False)
    getLogger().info(
        set_color("[Training]: ", "pink")
        + f"{len(sessions.offsets) - 1} sessions, {sessions.n_targets} targets, "
        + f"{config['train_batch_size']} parallel sessions; [Evaluation]: {len(valid)} valid and {len(test)} test targets"
    )
    return train_data, valid_data, test_data


def set_threads(config):
    if config["threads"] is not None:
        torch.set_num_threads(config["threads"])


def run(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True):
    """Train ``model`` on ``dataset`` with early stopping, then evaluate on valid and test.

    Returns RecBole's result dict: best_valid_score, valid_score_bigger, best_valid_result, test_result.
    """
    config = PluginConfig(model, dataset, config_file_list, config_dict)
    set_threads(config)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)

    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = config.model_class(config, train_data.dataset).to(config["device"])
    logger.info(model)
    trainer = get_trainer_class(config.model_class)(config, model)
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    return {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "saved_model_file": trainer.saved_model_file if saved else None,
    }


def load_data_and_model(model_file):
    """RecBole's ``load_data_and_model`` for any model, on current PyTorch.

    Returns config, model, dataset, train_data, valid_data, test_data.
    """
    checkpoint = load_checkpoint(model_file)
    config = checkpoint["config"]
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data.dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data
