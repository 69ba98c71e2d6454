"""Statistics that can tell two losses apart: paired differences over seeds with a 95 % confidence interval, and how
well a label-free signal (the misfit to the supervisor) predicts the gain over it.

A loss is compared with naive training (``weak_hard``) **paired by seed**: the same seed gives both runs the same
initialisation, data order and (for cached features) the same features, so the difference removes the seed's own
effect. :func:`paired_difference` returns the mean difference, its 95 % interval — the percentile bootstrap over
seeds (default, 10,000 resamples; no normality assumed) or Student's paired t — and whether the interval excludes 0:
a loss is called better (or worse) only then.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "paired_difference", "mean_interval", "mean_std", "misfit", "correlation"]


@dataclass(frozen=True)
class Interval:
    """A mean and its 95 % confidence interval over ``n`` paired seeds, by ``method``."""

    mean: float
    low: float
    high: float
    n: int
    method: str

    @property
    def excludes_zero(self) -> bool:
        return self.n > 1 and (self.low > 0 or self.high < 0)

    @property
    def verdict(self) -> str:
        if not self.excludes_zero:
            return "no difference shown"
        return "better" if self.low > 0 else "worse"

    def format(self, scale: float = 1.0, digits: int = 2) -> str:
        if self.n == 0 or math.isnan(self.mean):
            return "–"
        if self.n == 1:
            return f"{self.mean * scale:+.{digits}f} (1 seed)"
        return f"{self.mean * scale:+.{digits}f} [{self.low * scale:+.{digits}f}, {self.high * scale:+.{digits}f}]"


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation of the values that are numbers (``None`` and NaN left out); NaN for none."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _t_quantile(df: int, p: float = 0.975) -> float:
    from scipy import stats

    return float(stats.t.ppf(p, df))


def mean_interval(values, method: str = "bootstrap", resamples: int = 10_000, seed: int = 0) -> Interval:
    """The mean of ``values`` (one per seed; NaN dropped) and its 95 % interval."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, method)
    mean = float(x.mean())
    if len(x) == 1:
        return Interval(mean, float("nan"), float("nan"), 1, method)
    if method == "t":
        half = _t_quantile(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
        return Interval(mean, mean - half, mean + half, len(x), "paired t")
    if method != "bootstrap":
        raise ValueError(f"method must be 'bootstrap' or 't', got {method!r}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (resamples, len(x)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Interval(mean, float(low), float(high), len(x), "bootstrap over seeds")


def paired_difference(a: dict, b: dict, method: str = "bootstrap", **kwargs) -> Interval:
    """``a − b`` over the seeds both have (``{seed: value}`` each), with its 95 % interval (:func:`mean_interval`)."""
    seeds = sorted(set(a) & set(b))
    return mean_interval([a[s] - b[s] for s in seeds], method=method, **kwargs)


def misfit(student_predictions, weak_predictions) -> float:
    """The student's disagreement with its supervisor on the data it was trained on (Charikar et al. 2024: for a
    convex strong class, the gain over the supervisor is at least this misfit) — readable without ground truth."""
    s, w = np.asarray(student_predictions), np.asarray(weak_predictions)
    if s.shape != w.shape or s.size == 0:
        raise ValueError(f"misfit needs predictions of the same rows, got {s.shape} and {w.shape}")
    return float(np.mean(s != w))


def correlation(x, y) -> tuple[float, int]:
    """Pearson's correlation of paired values (NaN dropped) and how many pairs it is over."""
    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None and not (math.isnan(a) or math.isnan(b))]
    if len(pairs) < 3:
        return float("nan"), len(pairs)
    a, b = np.asarray(pairs, dtype=float).T
    if a.std() == 0 or b.std() == 0:
        return float("nan"), len(pairs)
    return float(np.corrcoef(a, b)[0, 1]), len(pairs)
