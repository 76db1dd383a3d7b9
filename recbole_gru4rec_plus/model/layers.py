"""Building blocks of the GRU4Rec family: GRU layers with an external input projection, final activations."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PluginError


def init_uniform_(weight, fan_in, fan_out):
    """GRU4Rec's initialisation: uniform in ±sqrt(6 / (fan_in + fan_out))."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        return weight.uniform_(-bound, bound)


class GRULayer(nn.Module):
    """One GRU layer; its input projection (B × 3H, bias included) is computed by the caller.

    Splitting the projection out lets the first layer take it straight from an item
    embedding (one-hot input) and keeps one step to a single matrix product.
    """

    def __init__(self, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.hidden_weight = nn.Parameter(torch.empty(hidden_size, 3 * hidden_size))
        for gate in self.hidden_weight.split(hidden_size, dim=1):
            init_uniform_(gate, hidden_size, hidden_size)

    def forward(self, input_gates, hidden):
        hidden_gates = hidden @ self.hidden_weight
        size = self.hidden_size
        reset, update = torch.sigmoid(input_gates[:, : 2 * size] + hidden_gates[:, : 2 * size]).chunk(2, dim=1)
        candidate = torch.tanh(input_gates[:, 2 * size :] + reset * hidden_gates[:, 2 * size :])
        return candidate + update * (hidden - candidate)


class GateProjection(nn.Linear):
    """x · W + b for the three gates of a GRU layer, initialised per gate like GRU4Rec."""

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, 3 * hidden_size)
        for gate in self.weight.split(hidden_size, dim=0):
            init_uniform_(gate, input_size, hidden_size)
        nn.init.zeros_(self.bias)


def parse_final_activation(name):
    """'linear', 'relu', 'tanh', 'leaky-<slope>', 'elu-<alpha>' -> a function on score matrices."""
    kind, _, parameter = str(name).lower().partition("-")
    try:
        value = float(parameter) if parameter else None
    except ValueError:
        value = None
        kind = "invalid"
    activations = {
        "linear": lambda scores: scores,
        "relu": F.relu,
        "tanh": torch.tanh,
        "leaky": lambda scores: F.leaky_relu(scores, value if value is not None else 0.01),
        "elu": lambda scores: F.elu(scores, value if value is not None else 1.0),
    }
    if kind not in activations or (value is not None and kind not in ("leaky", "elu")):
        raise PluginError(
            f"final_act '{name}' is not valid: use linear, relu, tanh, leaky-<slope> or elu-<alpha> (e.g. elu-0.5)"
        )
    return activations[kind]
