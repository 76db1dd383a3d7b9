"""The board's statistics (docs/algorithm.md §10): mean and 95% interval over seeds (Student t), and a
paired test over the same test targets (Wilcoxon signed-rank), Holm-corrected."""

import math

import numpy as np
from scipy import stats


def mean_and_interval(values):
    """(mean, half-width of the 95% Student-t interval over the values; None for one value)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, None
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return mean, float(half)


def paired_wilcoxon(first, second):
    """Two-sided p of the Wilcoxon signed-rank test on paired per-target values (zero differences
    dropped); 1.0 when the two never differ."""
    differences = np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64)
    differences = differences[differences != 0]  # dropped first, so that scipy's exact test applies to small samples
    if not len(differences):
        return 1.0
    return float(stats.wilcoxon(differences, alternative="two-sided").pvalue)


def holm(p_values):
    """Holm's step-down adjustment of a family of p-values (same order as given)."""
    order = np.argsort(p_values)
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted
