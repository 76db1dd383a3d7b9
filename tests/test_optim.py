import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recbole_gru4rec_plus.errors import PluginError
from recbole_gru4rec_plus.optim import IndexedAdagradM

torch.set_num_threads(1)
EPS = 1e-6


def ref_step(p, acc, vel, rows, g, lr, mom, eps=EPS):
    """NumPy reference of one update on the given (unique) rows with coalesced gradient g."""
    acc[rows] += g * g
    upd = lr * g / np.sqrt(acc[rows] + eps)
    if mom > 0:
        upd = mom * vel[rows] + upd
        vel[rows] = upd
    p[rows] -= upd


@pytest.mark.parametrize("mom", [0.0, 0.5])
def test_dense_matches_numpy_reference(mom):
    rng = np.random.default_rng(0)
    w = torch.nn.Parameter(torch.tensor(rng.normal(size=(5, 7))))
    b = torch.nn.Parameter(torch.tensor(rng.normal(size=7)))
    opt = IndexedAdagradM([w, b], lr=0.1, momentum=mom)
    ref = {k: (v.detach().numpy().copy(), np.zeros_like(v.detach().numpy()), np.zeros_like(v.detach().numpy()))
           for k, v in (("w", w), ("b", b))}
    for _ in range(6):
        gw, gb = rng.normal(size=(5, 7)), rng.normal(size=7)
        w.grad, b.grad = torch.tensor(gw), torch.tensor(gb)
        opt.step()
        for k, g in (("w", gw), ("b", gb)):
            ref_step(*ref[k], slice(None), g, 0.1, mom)
    for k, t in (("w", w), ("b", b)):
        np.testing.assert_allclose(t.detach().numpy(), ref[k][0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(opt.state[t]["acc"].numpy(), ref[k][1], rtol=1e-12)
        if mom > 0:
            np.testing.assert_allclose(opt.state[t]["vel"].numpy(), ref[k][2], rtol=1e-12, atol=1e-14)
        else:
            assert "vel" not in opt.state[t]


@pytest.mark.parametrize("mom", [0.0, 0.5])
@pytest.mark.parametrize("use_module", [True, False])
def test_sparse_updates_only_touched_rows(mom, use_module):
    n, d, lr = 30, 4, 0.2
    rng = np.random.default_rng(1)
    emb = torch.nn.Embedding(n, d, sparse=True, dtype=torch.float64)
    p_ref, acc_ref, vel_ref = emb.weight.detach().numpy().copy(), np.zeros((n, d)), np.zeros((n, d))
    opt = IndexedAdagradM(emb.parameters(), lr=lr, momentum=mom)
    batches = [[[3, 3, 7], [1, 3, 19]], [[7, 2, 2], [2, 29, 0]], [[5, 5, 5], [5, 11, 3]]]
    touched = set()
    for batch in batches:
        idx = torch.tensor(batch)
        coef = torch.tensor(rng.normal(size=(*idx.shape, d)))
        opt.zero_grad()
        out = emb(idx) if use_module else F.embedding(idx, emb.weight, sparse=True)
        (out * coef).sum().backward()
        assert emb.weight.grad.is_sparse and not emb.weight.grad.is_coalesced()
        before = emb.weight.detach().clone()
        state_before = {k: v.clone() for k, v in opt.state[emb.weight].items()}
        opt.step()
        # reference: coalesce the duplicates (sum), update only these rows
        rows = np.unique(idx.numpy())
        g = np.zeros((n, d))
        np.add.at(g, idx.numpy().ravel(), coef.numpy().reshape(-1, d))
        ref_step(p_ref, acc_ref, vel_ref, rows, g[rows], lr, mom)
        untouched = torch.ones(n, dtype=torch.bool)
        untouched[torch.as_tensor(rows)] = False
        assert torch.equal(emb.weight.detach()[untouched], before[untouched])
        for k, v in opt.state[emb.weight].items():
            assert torch.equal(v[untouched], state_before.get(k, torch.zeros_like(v))[untouched])
        touched |= set(rows.tolist())
    np.testing.assert_allclose(emb.weight.detach().numpy(), p_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(opt.state[emb.weight]["acc"].numpy(), acc_ref, rtol=1e-12)
    if mom > 0:
        np.testing.assert_allclose(opt.state[emb.weight]["vel"].numpy(), vel_ref, rtol=1e-12, atol=1e-14)
    never = sorted(set(range(n)) - touched)
    assert opt.state[emb.weight]["acc"][never].eq(0).all()


def test_sparse_float32_matches_reference():
    n, d, lr, mom = 1000, 16, 0.05, 0.3
    emb = torch.nn.Embedding(n, d, sparse=True)
    p_ref, acc_ref, vel_ref = (emb.weight.detach().numpy().astype(np.float64), np.zeros((n, d)), np.zeros((n, d)))
    opt = IndexedAdagradM(emb.parameters(), lr=lr, momentum=mom)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        idx = torch.randint(0, n, (300,), generator=gen)
        opt.zero_grad()
        emb(idx).sum().backward()
        opt.step()
        rows, counts = np.unique(idx.numpy(), return_counts=True)
        ref_step(p_ref, acc_ref, vel_ref, rows, np.repeat(counts[:, None], d, 1).astype(float), lr, mom)
    np.testing.assert_allclose(emb.weight.detach().numpy(), p_ref, rtol=1e-5, atol=1e-6)


def test_momentum0_vs_torch_adagrad():
    # torch.optim.Adagrad divides by sqrt(acc) + eps, GRU4Rec (and we) by sqrt(acc + eps):
    # equal up to O(eps / sqrt(acc)) for ordinary gradients, different for tiny ones.
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(6, 9, dtype=torch.float64, generator=gen)
    grads = [torch.randn(6, 9, dtype=torch.float64, generator=gen) for _ in range(5)]
    grads = [g.sign() * (0.5 + g.abs()) for g in grads]  # |g| >= 0.5, so eps / sqrt(acc) <= 2e-6

    def run(make_opt, scale):
        w = torch.nn.Parameter(w0.clone())
        opt = make_opt([w])
        for g in grads:
            w.grad = g * scale
            opt.step()
        return w.detach()

    ours = lambda ps: IndexedAdagradM(ps, lr=0.1, eps=EPS)  # noqa: E731
    theirs = lambda ps: torch.optim.Adagrad(ps, lr=0.1, eps=EPS, initial_accumulator_value=0)  # noqa: E731
    torch.testing.assert_close(run(ours, 1.0), run(theirs, 1.0), rtol=1e-5, atol=1e-6)
    tiny_ours, tiny_theirs = run(ours, 1e-4), run(theirs, 1e-4)
    assert not torch.allclose(tiny_ours, tiny_theirs, rtol=1e-3, atol=1e-3)
    p, acc = w0.numpy().copy(), np.zeros((6, 9))
    for g in grads:
        ref_step(p, acc, None, slice(None), g.numpy() * 1e-4, 0.1, 0.0)
    np.testing.assert_allclose(tiny_ours.numpy(), p, rtol=1e-12)


def test_state_dict_round_trip():
    torch.manual_seed(0)

    def make():
        emb = torch.nn.Embedding(50, 8, sparse=True)
        lin = torch.nn.Linear(8, 3)
        return emb, lin

    def step(emb, lin, opt, idx):
        opt.zero_grad()
        lin(emb(idx)).pow(2).sum().backward()
        opt.step()

    emb1, lin1 = make()
    opt1 = IndexedAdagradM([*emb1.parameters(), *lin1.parameters()], lr=0.05, momentum=0.4)
    batches = [torch.randint(0, 50, (20,)) for _ in range(6)]
    for idx in batches[:3]:
        step(emb1, lin1, opt1, idx)
    saved_opt = copy.deepcopy(opt1.state_dict())
    saved_params = copy.deepcopy((emb1.state_dict(), lin1.state_dict()))
    assert {"acc", "vel"} <= set(saved_opt["state"][0])

    emb2, lin2 = make()
    emb2.load_state_dict(saved_params[0])
    lin2.load_state_dict(saved_params[1])
    opt2 = IndexedAdagradM([*emb2.parameters(), *lin2.parameters()], lr=0.05, momentum=0.4)
    opt2.load_state_dict(saved_opt)
    for idx in batches[3:]:
        step(emb1, lin1, opt1, idx)
        step(emb2, lin2, opt2, idx)
    for a, b in zip([*emb1.parameters(), *lin1.parameters()], [*emb2.parameters(), *lin2.parameters()]):
        assert torch.equal(a, b)
        for k in ("acc", "vel"):
            assert torch.equal(opt1.state[a][k], opt2.state[b][k])


def test_params_without_grad_are_skipped():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opt = IndexedAdagradM([a, b], lr=0.1)
    a.grad = torch.ones(3)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(3)) and b not in opt.state
    assert torch.all(a < 1)


@pytest.mark.parametrize("kw, name", [
    (dict(lr=-0.1), "learning_rate"),
    (dict(lr=float("nan")), "learning_rate"),
    (dict(momentum=1.0), "momentum"),
    (dict(momentum=-0.1), "momentum"),
    (dict(eps=0.0), "eps"),
])
def test_invalid_options(kw, name):
    with pytest.raises(PluginError, match=name):
        IndexedAdagradM([torch.nn.Parameter(torch.ones(2))], **kw)


@pytest.mark.parametrize("mom", [0.0, 0.5])
def test_sparse_gradient_with_sorted_distinct_rows_is_used_without_coalescing(mom, monkeypatch):
    rows = torch.tensor([[1, 4, 5]])
    values = torch.tensor(np.random.default_rng(2).normal(size=(3, 2)))
    params = [torch.nn.Parameter(torch.ones(7, 2, dtype=torch.float64)) for _ in range(2)]
    opts = [IndexedAdagradM([p], lr=0.1, momentum=mom) for p in params]
    for _ in range(2):
        params[0].grad = torch.sparse_coo_tensor(rows, values, (7, 2), check_invariants=True).coalesce()
        opts[0].step()
    monkeypatch.setattr(torch.Tensor, "coalesce", lambda self: pytest.fail("coalesce() called"))
    for _ in range(2):
        params[1].grad = torch.sparse_coo_tensor(rows, values, (7, 2), check_invariants=True)  # not flagged coalesced
        assert not params[1].grad.is_coalesced()
        opts[1].step()
    assert torch.equal(params[0], params[1])
    assert torch.equal(opts[0].state[params[0]]["acc"], opts[1].state[params[1]]["acc"])


def test_sparse_gradient_with_unsorted_or_repeated_rows_is_merged():
    values = torch.tensor(np.random.default_rng(3).normal(size=(4, 2)))
    params = [torch.nn.Parameter(torch.ones(7, 2, dtype=torch.float64)) for _ in range(2)]
    opts = [IndexedAdagradM([p], lr=0.1) for p in params]
    params[0].grad = torch.sparse_coo_tensor(torch.tensor([[5, 1, 5, 2]]), values, (7, 2), check_invariants=True)
    params[1].grad = params[0].grad.coalesce()
    for opt in opts:
        opt.step()
    assert torch.equal(params[0], params[1])
