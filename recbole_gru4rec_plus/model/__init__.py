"""The plugin's models, and name lookup across plugin and RecBole models.

Plugin models are also registered under RecBole's own module path
(``recbole.model.sequential_recommender.<name lowercased>``), so that RecBole's name-based
APIs (``recbole.utils.get_model``, ``load_data_and_model``) find them too.
"""

import difflib
import importlib
import sys

import torch
from recbole.model.abstract_recommender import AbstractRecommender
from recbole.utils import get_model as recbole_get_model

from ..errors import PluginError
from .builtin_fixes import BUILTIN_FIXES
from .gru4rec_plus import GRU4RecPlus
from .hrnn import HRNN

PLUGIN_MODELS = {"GRU4RecPlus": GRU4RecPlus, "HRNN": HRNN}

_RECBOLE_MODEL_PACKAGES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
    "exlib_recommender",
)


def _import_recbole_sequential_models():
    """Import RecBole's sequential models once, leaving autograd's anomaly detection as it was.

    RecBole's ``sequential_recommender/sine.py`` calls ``torch.autograd.set_detect_anomaly(True)``
    when imported, for the whole process: from then on every backward pass of every model records
    and checks its graph (GRU4RecPlus trained 1.5-2.3x slower: ``bench/bench_throughput.py
    --compare-anomaly``), and a board's times depended on whether a built-in was named."""
    enabled = torch.is_anomaly_enabled()
    importlib.import_module("recbole.model.sequential_recommender")
    torch.autograd.set_detect_anomaly(enabled)


def _register_with_recbole():
    for name, model_class in PLUGIN_MODELS.items():
        module = sys.modules[model_class.__module__]
        sys.modules.setdefault(f"recbole.model.sequential_recommender.{name.lower()}", module)


def recbole_model_names():
    """Class names of RecBole's built-in models, as its model packages export them."""
    names = set()
    for package in _RECBOLE_MODEL_PACKAGES:
        try:
            module = importlib.import_module(f"recbole.model.{package}")
        except ImportError:  # exlib models need optional packages (xgboost, lightgbm)
            continue
        names.update(
            name
            for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, AbstractRecommender) and obj.__module__.startswith(module.__name__)
        )
    return sorted(names)


def get_model_class(name):
    """The model class called ``name``: a plugin model, else a RecBole built-in (fixed where
    ``builtin_fixes`` says so)."""
    if name in PLUGIN_MODELS:
        return PLUGIN_MODELS[name]
    if name in BUILTIN_FIXES:  # a RecBole model with a bug, fixed in a subclass of the same name
        return BUILTIN_FIXES[name]
    try:
        return recbole_get_model(name)
    except (ValueError, AttributeError, ImportError):  # RecBole imports exlib_recommender while searching, which needs lightgbm
        raise PluginError(unknown_model_message(name)) from None


def unknown_model_message(name):
    """One short line: the closest model names (a case-insensitive match first), not the whole list."""
    names = list(PLUGIN_MODELS) + recbole_model_names()
    by_case = [known for known in names if known.lower() == str(name).lower()]
    lowered = {known.lower(): known for known in names}
    close = by_case or [lowered[match] for match in difflib.get_close_matches(str(name).lower(), list(lowered), n=2,
                                                                             cutoff=0.6)]
    hint = f"did you mean {' or '.join(close)}?" if close else "python run/run.py --help names the models"
    return f"unknown model '{name}' (names are case-sensitive class names); {hint}"


_import_recbole_sequential_models()
_register_with_recbole()
