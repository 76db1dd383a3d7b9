"""The GRU4Rec building blocks against independent computations."""

import pytest
import torch

from recbole_gru4rec_plus.model.layers import (
    GRULayer,
    OneHotGRULayer,
    gather_distinct_rows,
    parse_final_activation,
)

GEN = torch.Generator().manual_seed(0)


def _randomise(module):
    """Non-zero values everywhere (biases start at zero, which would hide a missing bias)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=GEN, dtype=p.dtype))
    return module


def _cell_like(layer):
    cell = torch.nn.GRUCell(layer.input_size, layer.hidden_size).double()
    with torch.no_grad():  # GRUCell: weight_ih (3H, in) and weight_hh (3H, H), gates in the order r, z, n
        cell.weight_ih.copy_(layer.input_weight)
        cell.bias_ih.copy_(layer.input_bias)
        cell.weight_hh.copy_(layer.hidden_weight.t())
        cell.bias_hh.copy_(layer.hidden_bias)
    return cell


def test_gru_layer_equals_torch_gru_cell_with_the_same_weights_values_and_gradients():
    layer = _randomise(GRULayer(7, 5).double())
    cell = _cell_like(layer)
    x = torch.randn(4, 7, generator=GEN, dtype=torch.float64, requires_grad=True)
    h = torch.randn(4, 5, generator=GEN, dtype=torch.float64, requires_grad=True)
    out, expected = layer(x, h), cell(x, h)
    torch.testing.assert_close(out, expected)
    g = torch.randn(4, 5, generator=GEN, dtype=torch.float64)
    ours = torch.autograd.grad(out, (x, h, *layer.parameters()), g)
    theirs = torch.autograd.grad(expected, (x, h, cell.weight_ih, cell.bias_ih, cell.weight_hh, cell.bias_hh), g)
    for a, b in zip(ours, theirs[:4] + (theirs[4].t(), theirs[5])):
        torch.testing.assert_close(a, b)


def test_gru_layer_gradients_match_finite_differences():
    layer = _randomise(GRULayer(3, 4).double())
    x = torch.randn(2, 3, generator=GEN, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 4, generator=GEN, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h, *p: layer(x, h), (x, h, *layer.parameters()))


def test_gru_layer_has_a_hidden_side_bias_inside_the_reset_product():
    layer = GRULayer(3, 3).double()
    h = torch.randn(2, 3, generator=GEN, dtype=torch.float64)
    x = torch.randn(2, 3, generator=GEN, dtype=torch.float64)
    before = layer(x, h)
    with torch.no_grad():
        layer.hidden_bias[6:] = 1.0  # the candidate's hidden-side bias
    assert not torch.allclose(before, layer(x, h))
    assert layer.hidden_bias.shape == (9,) and (GRULayer(4, 4).hidden_bias == 0).all()


def test_one_hot_layer_follows_the_originals_equations():
    n_items, size = 6, 4
    layer = _randomise(OneHotGRULayer(n_items, size).double())
    items = torch.tensor([3, 1, 3])
    h = torch.randn(3, size, generator=GEN, dtype=torch.float64)
    V, W = layer.item_gates.weight[items] + layer.input_bias, layer.hidden_weight
    r = torch.sigmoid(V[:, :size] + h @ W[:, :size])
    z = torch.sigmoid(V[:, size : 2 * size] + h @ W[:, size : 2 * size])
    n = torch.tanh(V[:, 2 * size :] + (r * h) @ W[:, 2 * size :])  # the reset gate scales h before the product
    torch.testing.assert_close(layer(items, h), (1 - z) * n + z * h)


def test_one_hot_layer_gives_sparse_gradients_to_its_item_table():
    layer = OneHotGRULayer(10, 3)
    layer(torch.tensor([2, 5, 2]), torch.zeros(3, 3)).sum().backward()
    grad = layer.item_gates.weight.grad
    assert grad.is_sparse and set(grad.coalesce().indices()[0].tolist()) == {2, 5}


def test_gru_layer_initialises_each_gate_like_gru4rec():
    layer = GRULayer(400, 100)
    for weight, fan_in in ((layer.input_weight, 400), (layer.hidden_weight.t(), 100)):
        bound = (6.0 / (fan_in + 100)) ** 0.5
        for gate in weight.split(100, dim=0):
            assert gate.abs().max() <= bound and gate.abs().max() > 0.9 * bound
    assert (layer.input_bias == 0).all() and (layer.hidden_bias == 0).all()


def test_gather_distinct_rows_returns_the_rows_and_their_gradient():
    weight = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    rows, picks = torch.tensor([1, 4, 7]), torch.tensor([2, 0, 2])
    gathered, picked = gather_distinct_rows(weight, rows, picks)
    torch.testing.assert_close(gathered, weight[rows])
    torch.testing.assert_close(picked, weight[rows[picks]])
    coefficients = [torch.randn(t.shape, dtype=torch.float64) for t in (gathered, picked)]
    ((gathered * coefficients[0]).sum() + (picked * coefficients[1]).sum()).backward()
    sparse = weight.grad
    dense = weight.detach().clone().requires_grad_()
    ((dense[rows] * coefficients[0]).sum() + (dense[rows[picks]] * coefficients[1]).sum()).backward()
    assert sparse.is_sparse and sparse._indices()[0].tolist() == rows.tolist()
    torch.testing.assert_close(sparse.to_dense(), dense.grad)


# ---- final activations work in place ------------------------------------------------------------

OUT_OF_PLACE = {
    "linear": lambda x: x,
    "relu": torch.relu,
    "tanh": torch.tanh,
    "leaky-0.1": lambda x: torch.nn.functional.leaky_relu(x, 0.1),
    "leaky--0.2": lambda x: torch.nn.functional.leaky_relu(x, -0.2),
    "elu-0.5": lambda x: torch.nn.functional.elu(x, 0.5),
    "elu--0.5": lambda x: torch.nn.functional.elu(x, -0.5),
}


@pytest.mark.parametrize("name", OUT_OF_PLACE)
def test_final_activation_in_place_has_the_right_values_and_gradients(name):
    activation = parse_final_activation(name)
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    torch.testing.assert_close(activation(x * 1.0), OUT_OF_PLACE[name](x))
    assert torch.autograd.gradcheck(lambda x: activation(x * 1.0), (x,))
