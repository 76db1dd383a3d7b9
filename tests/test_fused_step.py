"""The fused training step (model/fused_step.py, GRU4RecPlus.train_step) against autograd's step.

The fused function's loss and gradients are checked against autograd through the loss classes
(an independent computation: loss.py's functions, the activations of layers.py) and against finite
differences; whole training steps, fused, compiled and by autograd, from one state must leave the
same weights.
"""

import shutil

import pytest
import torch

from recbole_gru4rec_plus.compiling import CompiledOrEager
from recbole_gru4rec_plus.loss import build_loss
from recbole_gru4rec_plus.model.fused_step import activation_spec, score_loss_gradients
from recbole_gru4rec_plus.model.layers import parse_final_activation
from recbole_gru4rec_plus.optim import IndexedAdagradM

from helpers import prepare

ACTIVATIONS = ["linear", "elu-0.5", "elu-1", "tanh", "relu", "leaky-0.25"]  # slopes exact in binary: torch's leaky_relu backward rounds its slope


def _columns(n_rows=5, n_items=9, seed=0, own_far_above=0.0):
    """States, item rows and biases, each row's own column and fractional counts (log-Q weights;
    one column counted twice, as a target that is also sampled), float64."""
    generator = torch.Generator().manual_seed(seed)
    states = torch.randn(n_rows, 4, generator=generator, dtype=torch.float64)
    rows = torch.randn(n_items, 4, generator=generator, dtype=torch.float64)
    bias = torch.randn(n_items, generator=generator, dtype=torch.float64) * 0.3
    own = torch.tensor([0, 2, 2, 5, 7])[:n_rows]
    counts = torch.rand(n_items, generator=generator, dtype=torch.float64) * 2 + 0.5
    counts[own] += 1.0  # every row's target is a column of its own; counts[2] holds two rows' targets
    if own_far_above:  # the own score far above every negative: the softmax must be over the negatives
        bias[own[0]] += own_far_above
    return states, rows, bias, own, counts


def _reference(states, rows, bias, own, counts, loss, final_act, n_slots):
    """Autograd through loss.py's classes on the explicit (rows × items) weight matrix."""
    states, rows, bias = (t.clone().requires_grad_() for t in (states, rows, bias))
    scores = parse_final_activation(final_act)(torch.addmm(bias, states, rows.t()).clone())
    weights = counts.expand(len(own), len(counts)).clone()
    weights[torch.arange(len(own)), own] -= 1.0
    value = build_loss(loss, bpreg=0.7)(own, scores, weights) * len(own) / n_slots
    return (value.detach(), *torch.autograd.grad(value, (states, rows, bias)))


@pytest.mark.parametrize("final_act, own_far_above",
                         # a target scoring 80 above every negative: its softmax must be the negatives' (tanh saturates)
                         [(act, 0.0) for act in ACTIVATIONS] + [(act, 80.0) for act in ACTIVATIONS if act != "tanh"])
@pytest.mark.parametrize("loss", ["bpr-max", "cross-entropy"])
def test_fused_loss_and_gradients_equal_autograd_through_the_loss_classes(loss, final_act, own_far_above):
    inputs = _columns(own_far_above=own_far_above)
    kind, parameter = activation_spec(final_act)
    got = score_loss_gradients(*inputs, n_slots=8, loss=loss, bpreg=0.7, epsilon=1e-24, activation=kind, parameter=parameter)
    expected = _reference(*inputs, loss, final_act, n_slots=8)
    for name, a, b in zip(("loss", "states", "rows", "bias"), got, expected):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("loss, final_act", [("bpr-max", "elu-0.5"), ("cross-entropy", "linear")])
def test_fused_gradients_match_finite_differences(loss, final_act):
    states, rows, bias, own, counts = _columns(seed=3)
    kind, parameter = activation_spec(final_act)

    def value(s, r, b):
        return float(score_loss_gradients(s, r, b, own, counts, n_slots=5, loss=loss, bpreg=1.0, epsilon=1e-24,
                                          activation=kind, parameter=parameter)[0])

    _, grad_states, grad_rows, grad_bias = score_loss_gradients(
        states, rows, bias, own, counts, n_slots=5, loss=loss, bpreg=1.0, epsilon=1e-24, activation=kind, parameter=parameter)
    step = 1e-6
    for tensor, grad, index in ((states, grad_states, (1, 2)), (rows, grad_rows, (2, 0)), (rows, grad_rows, (4, 3)),
                                (bias, grad_bias, (0,)), (bias, grad_bias, (6,))):
        plus, minus = tensor.clone(), tensor.clone()
        plus[index] += step
        minus[index] -= step
        arguments = lambda t: [t if x is tensor else x for x in (states, rows, bias)]
        numeric = (value(*arguments(plus)) - value(*arguments(minus))) / (2 * step)
        assert numeric == pytest.approx(float(grad[index]), rel=1e-5, abs=1e-8)


# ---- whole steps: fused (eager or compiled) and autograd's from one state -------------------------

SMALL = {"user_inter_num_interval": "[0,40)", "train_batch_size": 4, "n_sample": 16, "seed": 7}
RSC15 = {"loss": "cross-entropy", "final_act": "linear", "dropout_p_hidden": 0.4, "learning_rate": 0.2,
         "momentum": 0.2, "logq": 1.0, "bpreg": 0.0}
STEP_VARIANTS = {
    "defaults (bpr-max)": {},
    "rsc15 setting (cross-entropy, log-Q, dropout, momentum)": RSC15,
    "one-hot input, momentum": {"constrained_embedding": False, "embedding": 0, "momentum": 0.3},
    "separate embedding, 2 layers, dropout": {"constrained_embedding": False, "embedding": 8, "layers": [16, 12],
                                              "dropout_p_embed": 0.2, "dropout_p_hidden": 0.1},
    "2 layers on the shared embedding, dropouts": {"layers": [12, 16], "dropout_p_embed": 0.2, "dropout_p_hidden": 0.3,
                                                   "momentum": 0.1},
    "in-batch negatives only": {"n_sample": 0, "logq_tail": "exact"},
    "full softmax (n_sample: -1)": {"n_sample": -1, "loss": "cross-entropy", "momentum": 0.1},
    "tanh final activation": {"final_act": "tanh"},
}


def _train(model_name, options, steps, **step_options):
    """The model's parameters after ``steps`` training steps (float64), and the losses."""
    torch.set_default_dtype(torch.float64)
    try:
        config, train_data, _, _, model = prepare(model_name, **{**SMALL, **options, **step_options})
        optimizer = IndexedAdagradM(model.parameters(), lr=config["learning_rate"], momentum=config["momentum"],
                                    compile=bool(config["compile"]))
        model.train()
        model.reset_session_state()
        torch.manual_seed(11)  # dropout draws
        losses = []
        for _, batch in zip(range(steps), train_data):
            optimizer.zero_grad(set_to_none=True)
            if step_options.get("fused_step", True):
                losses.append(float(model.train_step(batch, optimizer)))
            else:
                loss = model.calculate_loss(batch)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
        return model, {name: p.detach().clone() for name, p in model.named_parameters()}, losses
    finally:
        torch.set_default_dtype(torch.float32)


def _assert_same_training(fused, autograd):
    """The same losses and weights, up to float64 rounding (which the RSC15 setting's learning rate of
    0.2 amplifies a few times a step: docs/lockstep.md)."""
    (_, fused_weights, fused_losses), (_, autograd_weights, autograd_losses) = fused, autograd
    assert fused_losses == pytest.approx(autograd_losses, rel=1e-8, abs=1e-10)
    assert set(fused_weights) == set(autograd_weights)
    for name in fused_weights:
        torch.testing.assert_close(fused_weights[name], autograd_weights[name], rtol=1e-7, atol=1e-9,
                                   msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("options", list(STEP_VARIANTS.values()), ids=list(STEP_VARIANTS))
def test_fused_steps_train_the_weights_autograds_steps_train(in_tmp_dir, options):
    fused = _train("GRU4RecPlus", options, 12)
    assert fused[0].fused
    autograd = _train("GRU4RecPlus", options, 12, fused_step=False)
    _assert_same_training(fused, autograd)
    start = _train("GRU4RecPlus", options, 0)[1]
    assert any(not torch.equal(start[name], fused[1][name]) for name in start)  # the steps did train


@pytest.mark.parametrize("options", [{}, {"hrnn_mode": "all", "dropout_p_init": 0.2, **RSC15}])
def test_hrnns_fused_steps_train_the_weights_autograds_steps_train(in_tmp_dir, options):
    options = {"session_gap": 3600, **options}
    fused = _train("HRNN", options, 12)
    assert fused[0].fused
    _assert_same_training(fused, _train("HRNN", options, 12, fused_step=False))


@pytest.mark.parametrize("options, reason", [
    ({"loss": "top1-max"}, "loss: top1-max"),
    ({"loss": "cross-entropy", "head": "mos"}, "head: mos"),
])
def test_steps_the_fused_function_does_not_compute_train_by_autograd(in_tmp_dir, options, reason, caplog):
    model = prepare(**{**SMALL, **options, "compile": True})[-1]
    assert not model.fused and model.fused_scores is None
    assert f"compile: True compiles the fused training step, which GRU4RecPlus does not take with {reason}" in caplog.text


def test_hrnn_with_a_user_term_in_the_scores_trains_by_autograd(in_tmp_dir):
    assert not prepare("HRNN", **SMALL, session_gap=3600, user_to_output=True)[-1].fused


@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++")), reason="torch.compile needs a C++ compiler")
def test_compiled_steps_train_the_weights_eager_fused_steps_train(in_tmp_dir):
    compiled = _train("GRU4RecPlus", RSC15, 6, compile=True)
    model = compiled[0]
    assert model.fused_scores.compile_seconds is not None and model.fused_scores.compiled is not None  # it compiled
    _assert_same_training(compiled, _train("GRU4RecPlus", RSC15, 6))


def test_a_function_that_cannot_compile_warns_once_and_runs_eagerly(monkeypatch, caplog):
    def broken_compile(function, **options):
        def call(*args, **kwargs):
            raise RuntimeError("no C++ compiler found\nmore detail")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    double = CompiledOrEager(lambda x: 2 * x, name="the doubling")
    assert torch.equal(double(torch.ones(3)), torch.full((3,), 2.0))
    assert torch.equal(double(torch.ones(2)), torch.full((2,), 2.0))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["compile: True could not compile the doubling (RuntimeError: no C++ compiler found); running it eagerly"]


def test_a_nan_step_loss_stops_the_epoch_with_one_line_naming_the_learning_rate(in_tmp_dir, monkeypatch):
    """The step losses are summed on the device and checked once an epoch: a NaN still stops the run."""
    from recbole_gru4rec_plus import PluginError
    from recbole_gru4rec_plus.trainer import get_trainer_class

    config, train_data, _, _, model = prepare(**SMALL)
    trainer = get_trainer_class(type(model))(config, model)
    monkeypatch.setattr(model, "train_step", lambda batch, optimizer: torch.tensor(float("nan")))
    with pytest.raises(PluginError, match=r"the training loss became NaN in epoch 3: lower learning_rate \(now 0.05\)"):
        trainer._train_epoch(train_data, 3)
