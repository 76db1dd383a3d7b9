"""Negative sampler of GRU4Rec: items drawn with P(i) ∝ supp(i)^alpha, served from a block cache."""

import numpy as np
import torch

from .errors import PluginError


class PopularitySampler:
    """Draws ``n_sample`` item ids per call with P(i) ∝ supp(i)^alpha, alpha in [0, 1].

    Items with supp(i) == 0 (incl. the padding item 0) have P(i) = 0 for every alpha, also for
    alpha == 0 (uniform over items with at least one training event). Draws are made
    ``cache_size`` steps at a time by inverse CDF, since a categorical draw per step is slow.
    """

    def __init__(self, supports, alpha: float, n_sample: int, cache_size: int,
                 generator: torch.Generator | None = None, seed: int | None = None):
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
        self._cdf = torch.cumsum(self.probabilities, 0)
        self._cdf /= self._cdf[-1].clone()  # make the last entry exactly 1
        # Zero-probability items are never hit since searchsorted(right=True) skips flat CDF runs;
        # clamp to the last positive item guards against u rounding up to 1.0.
        self._max_id = int(torch.nonzero(self.probabilities > 0)[-1])
        self.n_sample, self.cache_size = n_sample, cache_size
        if generator is None:
            generator = torch.Generator()
            if seed is not None:
                generator.manual_seed(int(seed))
            else:
                generator.seed()
        self.generator = generator
        self._cache = None
        self._row = cache_size  # forces a refill on the first call
        self._empty = torch.empty(0, dtype=torch.int64)

    def _refill(self):
        """Fill the whole (cache_size, n_sample) cache with fresh draws in one searchsorted call."""
        u = torch.rand(self.cache_size * self.n_sample, dtype=torch.float64, generator=self.generator)
        ids = torch.searchsorted(self._cdf, u, right=True).clamp_(max=self._max_id)
        self._cache = ids.view(self.cache_size, self.n_sample)
        self._row = 0

    def sample(self) -> torch.LongTensor:
        """Return the next step's (n_sample,) int64 item ids (a row view of the cache)."""
        if self.n_sample == 0:
            return self._empty
        if self._row == self.cache_size:
            self._refill()
        row = self._cache[self._row]
        self._row += 1
        return row
