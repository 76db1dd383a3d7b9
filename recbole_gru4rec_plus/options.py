"""Every option of a run checked in one place, before any work: type, range, and unknown keys.

A model declares its own keys as ``OPTIONS`` (key -> check) and may add ``check_options(config)``
for rules between keys; RecBole's keys that a run depends on and the plugin-wide keys are
declared here. A failing check raises ``PluginError`` with the key, the value and the fix. Keys
nobody knows are errors naming the closest known key; keys that only other models read are
warnings (``unused_option_warnings``).
"""

import difflib
import glob
import math
import os
import tempfile

import yaml

from .errors import PluginError
from .resources import PROPERTIES_DIR


class Check:
    """A predicate on an option's value, with the phrase that says what a valid value is."""

    def __init__(self, accepts, expected, example):
        self.accepts, self.expected, self.example = accepts, expected, example

    def __call__(self, key, value):
        if not self.accepts(value):
            raise PluginError(f"{key}={value!r} is not valid: expected {self.expected} (e.g. {key}: {self.example})")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def integer(low=None, optional=False, example=None):
    """An int >= ``low``; None too if ``optional``."""
    expected = "an integer" + (f" >= {low}" if low is not None else "") + (" or ~ (none)" if optional else "")
    return Check(lambda v: (optional and v is None) or (_is_int(v) and (low is None or v >= low)), expected,
                 example if example is not None else max(low or 0, 1))


def number(low=None, high=None, low_open=False, high_open=False, optional=False, example=None):
    """A finite number within [low, high] (open at either end if asked); None too if ``optional``."""
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high}")

    def accepts(value):
        if optional and value is None:
            return True
        if not _is_number(value):
            return False
        above = low is None or (value > low if low_open else value >= low)
        below = high is None or (value < high if high_open else value <= high)
        return above and below

    expected = "a number" + (" " + " and ".join(bounds) if bounds else "") + (" or ~ (none)" if optional else "")
    return Check(accepts, expected, example if example is not None else (low if low is not None and not low_open else 1))


def boolean():
    return Check(lambda v: isinstance(v, bool), "True or False", "True")


def choice(*values, optional=False):
    names = {str(v).lower() for v in values}
    accepts = lambda v: (optional and v is None) or (isinstance(v, str) and v.strip().lower() in names)
    return Check(accepts, "one of " + ", ".join(map(str, values)) + (" or ~" if optional else ""), values[0])


def text(optional=False):
    return Check(lambda v: (optional and v is None) or (isinstance(v, str) and v.strip() != ""),
                 "a name" + (" or ~ (none)" if optional else ""), "session_id")


def positive_ints():
    """A positive int or a non-empty list of them (layer sizes, cutoffs)."""
    accepts = lambda v: (_is_int(v) and v >= 1) or (isinstance(v, (list, tuple)) and v and all(_is_int(x) and x >= 1 for x in v))
    return Check(accepts, "a positive integer or a list of them", "[100]")


# RecBole's keys that a run of any model depends on (RecBole itself checks none of them)
RECBOLE_OPTIONS = {
    "epochs": integer(low=0, example=10),  # RecBole: 0 trains nothing and tests the initial model
    "train_batch_size": integer(low=1, example=64),
    "eval_batch_size": integer(low=1, example=4096),
    "learning_rate": number(low=0, example=0.001),  # RecBole: 0 is accepted (no parameter moves)
    "weight_decay": number(low=0),
    "seed": integer(example=2020),
    "stopping_step": integer(low=0, example=10),  # RecBole: stop after more than this many evaluations without gain
    "eval_step": integer(),  # RecBole: validate every eval_step epochs; <= 0 = never, and the final model is tested
    "MAX_ITEM_LIST_LENGTH": integer(low=1, example=50),
    "topk": positive_ints(),
    "reproducibility": boolean(),
    "show_progress": boolean(),
    "use_gpu": boolean(),
    "shuffle": boolean(),
    "valid_metric_bigger": boolean(),
    "state": choice("INFO", "DEBUG", "WARNING", "ERROR", "CRITICAL"),
    "data_path": text(),
    "checkpoint_dir": text(),
}

# the plugin's own keys for every model (properties/overall.yaml)
PLUGIN_OPTIONS = {
    "threads": integer(low=1, optional=True),
    "detect_anomaly": boolean(),
    "session_gap": number(low=0, low_open=True, optional=True, example=1800),
    "SESSION_ID_FIELD": text(optional=True),
    "drop_duplicate_rows": boolean(),
    "log_dir": text(optional=True),
    "breakdown": choice("popularity", optional=True),
    "breakdown_bins": integer(low=1, example=5),
}

# RecBole reads these without declaring them in its argument lists or YAML defaults
_RECBOLE_UNDECLARED = {
    "model", "dataset", "config_files", "encoding", "valid_neg_sample_args", "test_neg_sample_args", "nproc",
    "world_size", "ip", "port", "offset", "local_rank", "single_spec", "device", "eval_type", "MODEL_TYPE",
    "MODEL_INPUT_TYPE", "train_stage", "pretrain_epochs", "save_step",
}


def _yaml_keys(path):
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    return set(data) if isinstance(data, dict) else set()


def _recbole_properties():
    import recbole

    return os.path.join(os.path.dirname(recbole.__file__), "properties")


def _model_option_files():
    """Model name -> its YAML of defaults, RecBole's and the plugin's."""
    files = {}
    for folder in (os.path.join(_recbole_properties(), "model"), os.path.join(PROPERTIES_DIR, "model")):
        for path in glob.glob(os.path.join(folder, "*.yaml")):
            files[os.path.splitext(os.path.basename(path))[0]] = path
    return files


def known_keys(model_name, model_class=None):
    """(keys every run knows, keys of this model, keys of the other models -> their names)."""
    from recbole.utils import argument_list

    general = set(_RECBOLE_UNDECLARED) | set(RECBOLE_OPTIONS) | set(PLUGIN_OPTIONS)
    for name in ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments"):
        general |= set(getattr(argument_list, name))
    for pattern in ("overall.yaml", "dataset/*.yaml", "quick_start_config/*.yaml"):
        for path in glob.glob(os.path.join(_recbole_properties(), pattern)):
            general |= _yaml_keys(path)
    for pattern in ("overall.yaml", "dataset/*.yaml"):
        for path in glob.glob(os.path.join(PROPERTIES_DIR, pattern)):
            general |= _yaml_keys(path)
    own, others = set(getattr(model_class, "OPTIONS", {})), {}
    for name, path in _model_option_files().items():
        keys = _yaml_keys(path)
        if name == model_name:
            own |= keys
        else:
            for key in keys:
                others.setdefault(key, []).append(name)
    return general, own, others


def check_keys(user_keys, model_name, model_class=None):
    """Raise for a key no one knows (naming the closest known one); return the keys that only
    other models read, each with those models' names, for a warning."""
    general, own, others = known_keys(model_name, model_class)
    foreign = {}
    for key in user_keys:
        if key in general or key in own:
            continue
        if key in others:
            foreign[key] = sorted(others[key])
            continue
        close = difflib.get_close_matches(key, sorted(general | own | set(others)), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "check its spelling against the README"
        raise PluginError(f"unknown option '{key}': no RecBole, plugin or {model_name} key has that name; {hint}")
    return foreign


def _check_valid_metric(config):
    """RecBole looks valid_metric up only after the first epoch (a KeyError): it must be one of
    the metrics, at one of the topk cutoffs."""
    metrics = config["metrics"] if isinstance(config["metrics"], (list, tuple)) else [config["metrics"]]
    topk = config["topk"] if isinstance(config["topk"], (list, tuple)) else [config["topk"]]
    name, _, cutoff = str(config["valid_metric"]).partition("@")
    known = [f"{m}@{k}" for m in metrics for k in topk] if cutoff else list(metrics)
    if name.lower() not in {str(m).lower() for m in metrics} or (cutoff and not (cutoff.isdigit() and int(cutoff) in topk)):
        raise PluginError(f"valid_metric={config['valid_metric']!r} is not among the metrics computed (metrics "
                          f"{list(metrics)} at topk {list(topk)}): use one of {', '.join(map(str, known[:6]))}")


def check_values(config, model_class):
    """Type and range of RecBole's, the plugin's and the model's keys, then the rules between keys."""
    declared = {**RECBOLE_OPTIONS, **PLUGIN_OPTIONS, **getattr(model_class, "OPTIONS", {})}
    for key, check in declared.items():
        if key in config.final_config_dict:
            check(key, config[key])
    if config["valid_metric"] is not None:
        _check_valid_metric(config)
    rules = getattr(model_class, "check_options", None)
    if rules is not None:
        rules(config)


def check_writable(folder, key):
    """``folder`` can be written: it exists and takes a file, or its nearest existing parent is a
    folder that can be written. Nothing is created: a run stopped by a later check leaves no folder."""
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    try:
        if not os.path.isdir(existing):
            raise NotADirectoryError(20, "Not a directory")
        if existing == os.path.abspath(folder):
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
                pass
        elif not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as error:
        raise PluginError(f"{key} '{folder}' cannot be written ({error.strerror or error}): choose a folder you can "
                          f"write to (--{key}=...)") from None


def check_yaml_file(path):
    """A config file that exists, is a file, parses, and holds a mapping of keys."""
    if os.path.isdir(path):
        raise PluginError(f"config file '{path}' is a folder: give a YAML file to --config_files")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=yaml.FullLoader)
    except (OSError, UnicodeDecodeError) as error:
        raise PluginError(f"config file '{path}' cannot be read ({error}): check the file") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise PluginError(f"config file '{path}' is not valid YAML{line}: {getattr(error, 'problem', error)}; "
                          f"fix the file") from None
    if data is None:
        raise PluginError(f"config file '{path}' is empty: put 'key: value' lines in it or leave it out")
    if not isinstance(data, dict):
        raise PluginError(f"config file '{path}' holds a {type(data).__name__}, not 'key: value' lines: "
                          f"write one option per line")
    return data
