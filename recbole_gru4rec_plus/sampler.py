"""Negative sampler of GRU4Rec: items drawn with P(i) ∝ supp(i)^alpha, served from a block cache."""

import numpy as np
import torch

from .errors import PluginError


_REFILL_CHUNK = 1 << 16  # draws per chunk of a refill


def _alias_table(probabilities):
    """Walker's alias table (Vose's construction) of a probability vector, float64 numpy.

    Returns (keep, alias): column k holds its own item with probability keep[k], else item
    alias[k]; drawing k uniformly then gives item i with probability ``probabilities[i]``.
    """
    n = len(probabilities)
    scaled = probabilities * n
    keep, alias = np.ones(n), np.arange(n)
    small = [k for k in range(n) if scaled[k] < 1.0]
    large = [k for k in range(n) if scaled[k] >= 1.0]
    while small and large:
        short, tall = small.pop(), large[-1]
        keep[short], alias[short] = scaled[short], tall
        scaled[tall] = (scaled[tall] + scaled[short]) - 1.0  # the mass tall gave to column short
        if scaled[tall] < 1.0:
            small.append(large.pop())
    # what is left has scaled ~ 1 up to rounding: keep[k] = 1
    return keep, alias


class PopularitySampler:
    """Draws ``n_sample`` item ids per call with P(i) ∝ supp(i)^alpha, alpha in [0, 1].

    Items with supp(i) == 0 (incl. the padding item 0) have P(i) = 0 for every alpha, also for
    alpha == 0 (uniform over items with at least one training event). Draws are made
    ``cache_size`` steps at a time with Walker's alias method, since a categorical draw per
    step is slow (and an inverse-CDF search costs O(log n) per draw).
    """

    def __init__(self, supports, alpha: float, n_sample: int, cache_size: int,
                 generator: torch.Generator | None = None, seed: int | None = None, device=None):
        alpha, n_sample, cache_size = float(alpha), int(n_sample), int(cache_size)
        if not 0.0 <= alpha <= 1.0:
            raise PluginError(f"sample_alpha={alpha} is outside [0, 1]: set sample_alpha between 0 (uniform) and 1 (popularity).")
        if n_sample < 0:
            raise PluginError(f"n_sample={n_sample} is negative: set n_sample to 0 (no extra negatives) or a positive count.")
        if cache_size < 1:
            raise PluginError(f"sample_cache_size={cache_size} is below 1: set sample_cache_size to a positive number of steps.")
        supp = supports.detach().cpu() if isinstance(supports, torch.Tensor) else torch.as_tensor(np.asarray(supports))
        supp = supp.to(torch.float64).reshape(-1)
        if supp.numel() == 0 or not bool((supp > 0).any()):
            raise PluginError("all item supports are zero, so sample_alpha/n_sample negatives cannot be drawn: "
                              "the training data has no item events; check the dataset or set n_sample to 0.")
        if bool((supp < 0).any()):
            raise PluginError("item supports must be non-negative event counts; check the training data passed to the sampler.")
        weights = torch.where(supp > 0, supp.pow(alpha), torch.zeros_like(supp))
        self.probabilities = weights / weights.sum()
        # Walker's alias method over the items with P(i) > 0 (so no other item can ever be drawn):
        # one uniform u per draw picks column k = floor(u * n) and, through u * n - k, either the
        # column's own item (with probability _keep[k]) or its alias.
        self._items = torch.nonzero(self.probabilities > 0).squeeze(1)
        keep, alias = _alias_table(self.probabilities[self._items].numpy())
        self._keep = torch.from_numpy(keep)
        self._alias_items = self._items[torch.from_numpy(alias)]
        self.n_sample, self.cache_size = n_sample, cache_size
        if generator is None:
            generator = torch.Generator()
            if seed is not None:
                generator.manual_seed(int(seed))
            else:
                generator.seed()
        self.generator = generator
        self.device = torch.device(device or "cpu")  # where the samples are served: one copy per cache, not per step
        self._cache = None
        self._row = cache_size  # forces a refill on the first call
        self._empty = torch.empty(0, dtype=torch.int64, device=self.device)

    def _refill(self):
        """Fill a new (cache_size, n_sample) cache with fresh draws: O(1) work per draw, made in
        chunks so that the temporaries stay small (and in cache)."""
        self._refill_state = self.generator.get_state()  # what a resumed run redraws this cache from
        cache = torch.empty(self.cache_size * self.n_sample, dtype=torch.int64)
        for chunk in cache.split(_REFILL_CHUNK):
            self._draw(chunk)
        self._cache = cache.view(self.cache_size, self.n_sample).to(self.device)
        self._row = 0

    def _draw(self, out):
        """Fill ``out`` with item ids drawn by the alias method."""
        n_columns = len(self._items)
        u = torch.rand(len(out), dtype=torch.float64, generator=self.generator).mul_(n_columns)
        columns = u.long().clamp_(max=n_columns - 1)
        kept = u.frac_() < self._keep.index_select(0, columns)  # the fraction of u * n is a fresh uniform
        torch.where(kept, self._items.index_select(0, columns), self._alias_items.index_select(0, columns), out=out)

    def state_dict(self):
        """The generator's state before the current cache was drawn and the position in that cache
        (a few kB, not the cache's cache_size x n_sample ids): resuming redraws the same cache and
        goes on exactly where an uninterrupted run would."""
        filled = self._cache is not None
        return {"generator": self._refill_state if filled else self.generator.get_state(), "filled": filled,
                "row": self._row}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])
        self._cache, self._row = None, self.cache_size
        if state["filled"]:
            self._refill()
            self._row = state["row"]

    def sample(self) -> torch.LongTensor:
        """Return the next step's (n_sample,) int64 item ids (a row view of the cache)."""
        if self.n_sample == 0:
            return self._empty
        if self._row == self.cache_size:
            self._refill()
        row = self._cache[self._row]
        self._row += 1
        return row
