import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from recbole_gru4rec_plus.errors import PluginError
from recbole_gru4rec_plus.sampler import PopularitySampler

torch.set_num_threads(1)

SUPPORTS = np.array([0, 5, 1, 20, 0, 3, 100, 7, 0, 42, 2])


def _counts(sampler, steps):
    draws = torch.cat([sampler.sample() for _ in range(steps)])
    return np.bincount(draws.numpy(), minlength=len(SUPPORTS))


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_frequencies_follow_support_power_alpha(alpha):
    s = PopularitySampler(SUPPORTS, alpha, n_sample=500, cache_size=16, seed=123)
    counts = _counts(s, 400)  # 200k draws
    pos = SUPPORTS > 0
    weights = np.where(pos, SUPPORTS.astype(float) ** alpha, 0.0)
    expected = weights / weights.sum()
    np.testing.assert_allclose(s.probabilities.numpy(), expected, rtol=1e-12)
    assert s.probabilities.dtype == torch.float64
    assert counts[~pos].sum() == 0
    f_exp = expected[pos] * counts.sum()
    assert chisquare(counts[pos], f_exp).pvalue > 0.001


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_zero_support_items_never_drawn(alpha):
    supp = torch.tensor([0, 0, 1, 0, 0, 1, 0])  # torch input, zero items at both ends
    s = PopularitySampler(supp, alpha, n_sample=1000, cache_size=5, seed=0)
    draws = torch.cat([s.sample() for _ in range(20)])
    assert set(draws.unique().tolist()) == {2, 5}
    assert s.probabilities[[0, 1, 3, 4, 6]].eq(0).all()


def test_sample_shape_dtype():
    s = PopularitySampler(SUPPORTS, 0.75, n_sample=7, cache_size=4, seed=1)
    x = s.sample()
    assert x.shape == (7,) and x.dtype == torch.int64


def test_cache_refill():
    s = PopularitySampler(np.arange(1, 1001), 0.5, n_sample=50, cache_size=3, seed=5)
    refills = []
    orig = s._refill
    s._refill = lambda: (refills.append(1), orig())[1]
    rows = [s.sample().clone() for _ in range(7)]
    assert len(refills) == 3  # at calls 1, 4 and 7
    for i in range(7):
        for j in range(i + 1, 7):
            assert not torch.equal(rows[i], rows[j])


def test_determinism():
    def run(**kw):
        s = PopularitySampler(SUPPORTS, 0.5, n_sample=20, cache_size=3, **kw)
        return torch.stack([s.sample().clone() for _ in range(10)])

    assert torch.equal(run(seed=42), run(seed=42))
    assert not torch.equal(run(seed=42), run(seed=43))
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(run(generator=g1), run(generator=g2))


def test_n_sample_zero():
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    s = PopularitySampler(SUPPORTS, 0.5, n_sample=0, cache_size=10, generator=g)
    for _ in range(25):
        x = s.sample()
        assert x.shape == (0,) and x.dtype == torch.int64
    assert torch.equal(g.get_state(), state)


@pytest.mark.parametrize("kw, name", [
    (dict(alpha=-0.1), "sample_alpha"),
    (dict(alpha=1.5), "sample_alpha"),
    (dict(n_sample=-1), "n_sample"),
    (dict(cache_size=0), "sample_cache_size"),
    (dict(supports=np.zeros(5, dtype=np.int64)), "support"),
])
def test_invalid_options(kw, name):
    args = dict(supports=SUPPORTS, alpha=0.5, n_sample=10, cache_size=10)
    args.update(kw)
    with pytest.raises(PluginError, match=name):
        PopularitySampler(**args)


@pytest.mark.parametrize("seed", [None, 7])
def test_global_rng_untouched(seed):
    before = torch.get_rng_state()
    s = PopularitySampler(SUPPORTS, 0.5, n_sample=100, cache_size=2, seed=seed)
    for _ in range(5):
        s.sample()
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("supports", [SUPPORTS, np.random.default_rng(0).zipf(1.5, 2000) % 500])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_alias_table_gives_exactly_the_probabilities(supports, alpha):
    # column k of n is drawn with probability 1/n and gives its own item with probability keep[k]
    s = PopularitySampler(supports, alpha, n_sample=1, cache_size=1, seed=0)
    n = len(s._items)
    implied = torch.zeros_like(s.probabilities)
    implied.index_add_(0, s._items, s._keep / n)
    implied.index_add_(0, s._alias_items, (1 - s._keep) / n)
    torch.testing.assert_close(implied, s.probabilities, rtol=1e-12, atol=1e-15)
    assert set(s._alias_items.tolist()) <= set(np.flatnonzero(np.asarray(supports) > 0).tolist())


def test_the_saved_state_is_small_and_resumes_the_draws_exactly():
    import pickle

    supports = torch.arange(1, 501, dtype=torch.float64)
    first = PopularitySampler(supports, 0.5, 64, 8, seed=3)
    for _ in range(13):  # into the second cache
        first.sample()
    state = pickle.loads(pickle.dumps(first.state_dict()))
    assert len(pickle.dumps(state)) < 10_000  # the generator and a position, not 8 x 64 ids
    ahead = [first.sample().clone() for _ in range(20)]  # the rest of this cache and two more
    second = PopularitySampler(supports, 0.5, 64, 8, seed=99)
    second.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(ahead, (second.sample() for _ in range(20))))
    fresh = PopularitySampler(supports, 0.5, 64, 8, seed=3)
    fresh.load_state_dict(PopularitySampler(supports, 0.5, 64, 8, seed=3).state_dict())  # saved before any draw
    assert torch.equal(fresh.sample(), PopularitySampler(supports, 0.5, 64, 8, seed=3).sample())


def test_samples_are_served_on_the_samplers_device_one_copy_per_cache():
    """The model's device (a GPU's): the cache is moved there once per refill, never a step's draws."""
    s = PopularitySampler(SUPPORTS, 0.5, n_sample=7, cache_size=3, seed=1, device="meta")
    samples = [s.sample() for _ in range(5)]
    assert [sample.device.type for sample in samples] == ["meta"] * 5
    assert samples[-1]._base is s._cache  # a row of the cache on the device, not a copy made for the step
    assert PopularitySampler(SUPPORTS, 0.5, n_sample=0, cache_size=3, device="meta").sample().device.type == "meta"
