"""The statistics every stage reports with: seeded percentile bootstrap 95% confidence intervals.

`bootstrap_ci`: a mean and its interval (evaluation scores, blind A/B win rates);
`paired_bootstrap`: the mean difference of two models on the same documents, its interval and
a two-sided p-value (Compare, promotion); `difference_ci`: a statistic's difference between two
independent samples (review savings against the base model). Reproducible for a seed, so a
page that redraws shows the same figures. Shared by the stages; it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Interval:
    mean: float
    low: float
    high: float


def _nan_interval() -> Interval:
    return Interval(float("nan"), float("nan"), float("nan"))


def bootstrap_ci(values, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """Mean with a percentile bootstrap confidence interval, reproducible for a seed."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return _nan_interval()
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (n_resamples, values.size))].mean(axis=1)
    tail = (1 - level) / 2
    return Interval(
        float(values.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))
    )


def paired_bootstrap(a, b, n_resamples: int = 2000, seed: int = 0) -> tuple[Interval, float]:
    """Mean difference b - a on the same documents with its CI, and a two-sided p-value for no
    difference (the share of resampled differences on the other side of zero, doubled)."""
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if diff.size == 0:
        return _nan_interval(), float("nan")
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, (n_resamples, diff.size))].mean(axis=1)
    p = 2 * min((means <= 0).mean(), (means >= 0).mean())
    tail = 0.025
    ci = Interval(
        float(diff.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))
    )
    return ci, float(min(1.0, p))


def difference_ci(a, b, statistic, n_resamples: int = 1000, seed: int = 0) -> Interval:
    """statistic(a) - statistic(b) for two independent samples, with a percentile bootstrap 95%
    CI (each sample resampled on its own); NaN when either sample is empty."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0 or b.size == 0:
        return _nan_interval()
    rng = np.random.default_rng(seed)
    resampled_a = a[rng.integers(0, a.size, (n_resamples, a.size))]
    resampled_b = b[rng.integers(0, b.size, (n_resamples, b.size))]
    diffs = statistic(resampled_a, axis=1) - statistic(resampled_b, axis=1)
    low, high = np.quantile(diffs, [0.025, 0.975])
    return Interval(float(statistic(a) - statistic(b)), float(low), float(high))
