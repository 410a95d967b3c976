"""Intervals and comparisons against analytic answers: the t interval, the bootstrap of a
mean, Welch's t, and the paired bootstrap on known differences."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.results import stats


def mean_stat(values: np.ndarray):
    return lambda draw: 100.0 * values[draw["test"]].mean(axis=1)


def test_seed_interval_is_student_t() -> None:
    iv = stats.seed_interval([70.0, 72.0, 74.0])
    half = sps.t.ppf(0.975, 2) * 2.0 / math.sqrt(3)
    assert iv.mean == 72.0 and iv.std == pytest.approx(2.0) and iv.n == 3 and iv.kind == "seeds"
    assert iv.low == pytest.approx(72.0 - half) and iv.high == pytest.approx(72.0 + half)
    one = stats.seed_interval([5.0])
    assert one.std is None and one.low is None and one.kind == "none"


def test_bootstrap_interval_of_an_accuracy_matches_the_normal_approximation() -> None:
    rng = np.random.default_rng(1)
    correct = (rng.random(4000) < 0.7).astype(float)
    p = correct.mean()
    low, high = stats.bootstrap_interval(mean_stat(correct), {"test": len(correct)}, n_boot=4000)
    half = 1.96 * math.sqrt(p * (1 - p) / len(correct)) * 100
    assert (high - low) / 2 == pytest.approx(half, rel=0.08)
    assert (low + high) / 2 == pytest.approx(100 * p, abs=0.3)


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    correct = (np.arange(500) % 3 == 0).astype(float)
    a = stats.bootstrap_interval(mean_stat(correct), {"test": 500}, seed=3)
    b = stats.bootstrap_interval(mean_stat(correct), {"test": 500}, seed=3)
    assert a == b


def test_welch_against_scipy() -> None:
    a, b = [70.0, 71.0, 73.0], [75.0, 77.0, 76.5]
    c = stats.welch(a, b)
    ref = sps.ttest_ind(b, a, equal_var=False)
    assert c.diff == pytest.approx(np.mean(b) - np.mean(a))
    assert c.p_value == pytest.approx(ref.pvalue)
    assert c.low < c.diff < c.high and c.verdict(True) == "better" and c.verdict(False) == "worse"
    assert stats.welch([1.0], [2.0, 3.0]).verdict(True) == "untested"


def test_paired_bootstrap_finds_a_known_difference_and_a_tie() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    hard = rng.random(n) < 0.3  # items both rows share: the pairing removes their variance
    a = [(~hard & (rng.random(n) < 0.9)).astype(float) for _ in range(3)]
    b = [((~hard & (rng.random(n) < 0.9)) | (hard & (rng.random(n) < 0.2))).astype(float) for _ in range(3)]
    c = stats.paired_bootstrap([mean_stat(x) for x in a], [mean_stat(x) for x in b], {"test": n})
    expected = 100 * (np.mean([x.mean() for x in b]) - np.mean([x.mean() for x in a]))
    assert c.diff == pytest.approx(expected)
    assert c.low < expected < c.high and c.p_value < 0.01 and c.method == "paired bootstrap"
    same = stats.paired_bootstrap([mean_stat(x) for x in a], [mean_stat(x) for x in a[::-1]], {"test": n})
    assert same.diff == pytest.approx(0.0) and same.p_value > 0.5 and same.verdict(True) == "tie"


def test_pooled_std() -> None:
    assert stats.pooled_std([1.0, 3.0], [2.0, 2.0]) == pytest.approx(math.sqrt((2.0 + 0.0) / 2))
    with pytest.raises(ValueError):
        stats.pooled_std([1.0], [1.0, 2.0])
