"""Uncertainty of reported numbers: seed intervals, bootstrap intervals, paired comparisons.

Two sources of variation enter a benchmark number: the pretraining seed (another run of
the same recipe gives another backbone) and the finite test set (other images of the same
distribution give another score). This module measures both:

- :func:`seed_interval`: mean, sample std and the Student-t 95 % interval of the mean over
  seeds (seed variation only; the test set is held fixed);
- :func:`bootstrap_interval`: the percentile interval of a statistic of per-sample values
  under resampling of the samples (test-set variation of one run);
- :func:`compare`: the difference B - A of a metric between two rows, with a two-level
  bootstrap (seeds of each row resampled independently, test samples resampled with the
  same indices for both rows: a paired bootstrap) when both rows kept their per-sample
  values, else Welch's t on the seed values. Two-sided p-values.

Every resampling uses a seeded ``numpy`` generator: the same inputs give the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
N_BOOT = 2000
BOOT_SEED = 0


@dataclass(frozen=True)
class Interval:
    """A point estimate with its spread and two-sided interval."""

    mean: float
    std: float | None  # sample std over seeds (None for one value)
    n: int
    low: float | None
    high: float | None
    kind: str  # "seeds" (t over seeds), "bootstrap" (test samples of one run) or "none"

    @property
    def half_width(self) -> float | None:
        return None if self.low is None or self.high is None else (self.high - self.low) / 2.0


def seed_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean, std and the t-interval of the mean of ``values`` (one per seed)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("seed_interval needs at least one value")
    mean = float(v.mean())
    if v.size < 2:
        return Interval(mean, None, 1, None, None, "none")
    std = float(v.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2.0, v.size - 1)) * std / math.sqrt(v.size)
    return Interval(mean, std, int(v.size), mean - half, mean + half, "seeds")


#: A statistic of resampled test items: ``draw`` maps each sample group to a ``(B, N_group)``
#: array of item indices (B resamples); it returns the ``(B,)`` metric values.
Statistic = Callable[[dict[str, np.ndarray]], np.ndarray]


def full_draw(sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """The draw that takes every item once: the point estimate."""
    return {g: np.arange(n)[None, :] for g, n in sizes.items()}


def resample(sizes: dict[str, int], n_boot: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n_boot`` resamples with replacement of the items of every group (independent groups)."""
    if any(n < 1 for n in sizes.values()):
        raise ValueError(f"every sample group needs at least one item, got {sizes}")
    return {g: rng.integers(0, n, (n_boot, n)) for g, n in sizes.items()}


def bootstrap_interval(statistic: Statistic, sizes: dict[str, int], n_boot: int = N_BOOT,
                       confidence: float = CONFIDENCE, seed: int = BOOT_SEED) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over ``n_boot`` resamples of the test items."""
    draws = statistic(resample(sizes, n_boot, np.random.default_rng(seed)))
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(draws, alpha)), float(np.quantile(draws, 1.0 - alpha))


@dataclass(frozen=True)
class Comparison:
    """B - A of one metric (in the metric's units) and its uncertainty."""

    diff: float
    low: float | None
    high: float | None
    p_value: float | None
    method: str  # "paired bootstrap", "welch" or "none"
    n_a: int
    n_b: int

    def significant(self, alpha: float = 1.0 - CONFIDENCE) -> bool:
        return self.p_value is not None and self.p_value < alpha

    def verdict(self, higher_is_better: bool) -> str:
        """``better`` / ``worse`` (B against A, significant), ``tie`` or ``untested``."""
        if self.p_value is None:
            return "untested"
        if not self.significant():
            return "tie"
        return "better" if (self.diff > 0) == higher_is_better else "worse"


def welch(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Comparison:
    """Welch's t on per-seed values: mean(b) - mean(a), its interval and two-sided p."""
    va, vb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    diff = float(vb.mean() - va.mean()) if va.size and vb.size else float("nan")
    if va.size < 2 or vb.size < 2:
        return Comparison(diff, None, None, None, "none", int(va.size), int(vb.size))
    sa, sb = va.var(ddof=1) / va.size, vb.var(ddof=1) / vb.size
    se = math.sqrt(sa + sb)
    if se == 0.0:
        p = 1.0 if diff == 0.0 else 0.0
        return Comparison(diff, diff, diff, p, "welch", int(va.size), int(vb.size))
    dof = (sa + sb) ** 2 / (sa ** 2 / (va.size - 1) + sb ** 2 / (vb.size - 1))
    t = diff / se
    half = float(sps.t.ppf(0.5 + confidence / 2.0, dof)) * se
    p = float(2.0 * sps.t.sf(abs(t), dof))
    return Comparison(diff, diff - half, diff + half, p, "welch", int(va.size), int(vb.size))


def paired_bootstrap(stat_a: Sequence[Statistic], stat_b: Sequence[Statistic], sizes: dict[str, int],
                     n_boot: int = N_BOOT, confidence: float = CONFIDENCE, seed: int = BOOT_SEED) -> Comparison:
    """Two-level bootstrap of mean_seeds(B) - mean_seeds(A).

    ``stat_a[s]`` is the metric of seed ``s`` of row A (see :data:`Statistic`); the same
    item indices mean the same test items for A and B. Each replicate draws one resample
    of the test items, shared by both rows (the pairing), and the seeds of each row with
    replacement, independently. The p-value is two-sided: twice the smaller tail mass at
    zero (with the +1 correction of a finite bootstrap), capped at 1.
    """
    if not stat_a or not stat_b:
        raise ValueError("paired_bootstrap needs at least one seed per row")
    full = full_draw(sizes)
    diff = float(np.mean([f(full)[0] for f in stat_b]) - np.mean([f(full)[0] for f in stat_a]))
    rng = np.random.default_rng(seed)
    draw = resample(sizes, n_boot, rng)
    cols = np.arange(n_boot)[:, None]

    def seed_mean(stats: Sequence[Statistic]) -> np.ndarray:
        values = np.stack([f(draw) for f in stats])  # (seeds, B)
        picks = rng.integers(0, len(stats), (n_boot, len(stats)))
        return values[picks, cols].mean(axis=1)

    draws = seed_mean(stat_b) - seed_mean(stat_a)
    alpha = (1.0 - confidence) / 2.0
    below = (np.count_nonzero(draws <= 0.0) + 1) / (n_boot + 1)
    above = (np.count_nonzero(draws >= 0.0) + 1) / (n_boot + 1)
    p = min(1.0, 2.0 * min(below, above))
    return Comparison(diff, float(np.quantile(draws, alpha)), float(np.quantile(draws, 1.0 - alpha)), p,
                      "paired bootstrap", len(stat_a), len(stat_b))


def pooled_std(a: Sequence[float], b: Sequence[float]) -> float:
    """sqrt of the mean of the two sample variances (each over its own seeds)."""
    va, vb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if va.size < 2 or vb.size < 2:
        raise ValueError("pooled_std needs at least two seeds per row")
    return float(math.sqrt((va.var(ddof=1) + vb.var(ddof=1)) / 2.0))
