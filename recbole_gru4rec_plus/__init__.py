"""recbole_gru4rec_plus: the real GRU4Rec family inside RecBole.

Importing the package registers its models with RecBole (see ``recbole_gru4rec_plus.model``).
"""

from .errors import PluginError
from .model import GRU4RecPlus, PLUGIN_MODELS, get_model_class

__all__ = ["PluginError", "GRU4RecPlus", "PLUGIN_MODELS", "get_model_class"]
__version__ = "0.1.0"
