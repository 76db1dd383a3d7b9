"""RecBole's ``Config`` with the plugin's models and YAML defaults layered in.

RecBole 1.2.1 only reads YAML defaults from its own package (``recbole/properties``) and only
finds models inside ``recbole.model``: a plugin model's YAML would be silently ignored. This
subclass keeps RecBole's layering and adds the plugin's ``properties/`` on top of it:

    RecBole overall -> RecBole model -> RecBole dataset -> RecBole model-type defaults
    -> plugin overall -> plugin model -> plugin dataset
    -> user config files -> config dict -> command line
"""

import ast
import os

from recbole.config import Config
from recbole.utils import ModelType

from .errors import PluginError
from .model import get_model_class
from .options import check_keys, check_values, check_yaml_file
from .resources import PROPERTIES_DIR


def plugin_yaml_files(model_name, dataset_name, model_class=None):
    """The plugin's default YAML files for a model and dataset, lowest priority first. A plugin
    model that extends another (HRNN extends GRU4RecPlus) gets its base's file first, then its own."""
    names = [cls.__name__ for cls in reversed(model_class.__mro__)] if model_class is not None else [model_name]
    candidates = [
        os.path.join(PROPERTIES_DIR, "overall.yaml"),
        *(os.path.join(PROPERTIES_DIR, "model", f"{name}.yaml") for name in names),
        os.path.join(PROPERTIES_DIR, "dataset", f"{dataset_name}.yaml"),
    ]
    return [path for path in candidates if os.path.isfile(path)]


def resolve_config_file(path):
    """``path`` as given, else the plugin's own file of that name under ``properties/`` (e.g.
    ``paper/gru4rec_rsc15.yaml``, the original's published settings), which ships with the package."""
    if os.path.exists(path):
        return path
    shipped = os.path.join(PROPERTIES_DIR, path)
    if not os.path.isabs(path) and os.path.isfile(shipped):
        return shipped
    raise PluginError(f"config file '{path}' does not exist: check the path given to --config_files")


def read_value(text):
    """A value given as text (the command line): a Python/YAML literal (5, 0.1, 1e-3, [100], True,
    ~), else the text itself. Never evaluated as code: RecBole's own conversion calls eval()."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    lowered = text.strip().lower()
    return {"true": True, "false": False, "~": None, "none": None, "null": None}.get(lowered, text)


class PluginConfig(Config):
    """``Config`` that knows the plugin's models and reads the plugin's YAML defaults, and checks
    every option (``recbole_gru4rec_plus.options``) before anything else runs.

    ``unused_options``: the keys given that only other models read (key -> those models), to warn of.
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None):
        config_file_list = [resolve_config_file(path) for path in config_file_list or []]
        for path in config_file_list:
            check_yaml_file(path)
        try:
            super().__init__(model, dataset, config_file_list, config_dict)
        except (ValueError, NotImplementedError) as error:  # RecBole's own checks (topk, metrics, eval_args)
            raise PluginError(f"{str(error).strip().rstrip('.')}: fix that option") from None
        self.unused_options = check_keys(self.external_config_dict, self["model"], self.model_class)
        check_values(self, self.model_class)

    def __str__(self):
        """RecBole's dump of the configuration, showing what runs: the device in use (no use_gpu or
        gpu_id without a GPU) and what the model says of itself (``shown_options``)."""
        import torch

        shown = dict(self.final_config_dict)
        if not (torch.cuda.is_available() and shown.get("use_gpu")):
            shown.pop("use_gpu", None)
            shown.pop("gpu_id", None)
        shown["device"] = str(shown.get("device"))
        describe = getattr(self.model_class, "shown_options", None)
        if describe is not None:
            shown = describe(shown)
        real, self.final_config_dict = self.final_config_dict, shown
        try:
            return super().__str__()
        finally:
            self.final_config_dict = real

    def _convert_config_dict(self, config_dict):
        return {key: read_value(value) if isinstance(value, str) else value for key, value in config_dict.items()}

    def _load_cmd_line(self):
        """Options come from the caller (run/run.py passes its command line as config_dict), not from sys.argv."""
        return dict()

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
        if model is None:
            raise PluginError("no model given: pass --model=NAME (e.g. --model=GRU4RecPlus)")
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
        if dataset is None:
            raise PluginError("no dataset given: pass --dataset=NAME (e.g. --dataset=ml-100k)")
        model_class = get_model_class(model) if isinstance(model, str) else model
        return model_class.__name__, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        for path in plugin_yaml_files(model, dataset, model_class):
            config_dict = self._update_internal_config_dict(path)
            if config_dict and os.path.basename(os.path.dirname(path)) == "dataset":
                self.parameters["Dataset"] += [k for k in config_dict if k not in self.parameters["Dataset"]]

    def _set_default_parameters(self):
        # RecBole refuses sequential models with loss_type CE unless the user also switches off
        # training negatives, which its overall.yaml switches on: do that for them, unless they
        # asked for negatives explicitly.
        final = self.final_config_dict
        if (
            final.get("MODEL_TYPE") == ModelType.SEQUENTIAL
            and final.get("loss_type") == "CE"
            and "train_neg_sample_args" not in self.external_config_dict
        ):
            final["train_neg_sample_args"] = None
        super()._set_default_parameters()
