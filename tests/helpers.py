"""Shared test helpers (pytest puts tests/ on sys.path)."""
QUIET = {"show_progress": False, "state": "WARNING"}


def prepare(model="GRU4RecPlus", dataset="ml-100k", config_file_list=None, **options):
    """Config, loaders and a fresh model, as run/run.py builds them."""
    from recbole.utils import init_seed

    from recbole_gru4rec_plus.config import PluginConfig
    from recbole_gru4rec_plus.quick_start import create_dataset, data_preparation

    config = PluginConfig(model, dataset, config_file_list, {**QUIET, **options})
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    model = config.model_class(config, train_data.dataset)
    return config, train_data, valid_data, test_data, model
