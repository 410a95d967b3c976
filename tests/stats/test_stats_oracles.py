"""Intervals, tests and per-item statistics recomputed by plain numpy / scipy code.

Each check compares a function of :mod:`harness.results.stats` or
:mod:`harness.results.samples` with an independent implementation on small inputs:
the t interval (n, dof, quantile), Welch's t (Satterthwaite dof, interval, p), the
percentile bootstrap, the paired two-level bootstrap (pairing, seed resampling, p with
the +1 correction), verdicts, and the metric kinds of a per-item table under resampling.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from harness.results import compare, samples, separation, stats, store
from record_fixtures import write_rec


# ---------------------------------------------------------------- seed intervals
def _t_interval(v: np.ndarray, confidence: float) -> tuple[float, float, float, float]:
    n = len(v)
    mean = sum(v) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    half = sps.t.ppf(1.0 - (1.0 - confidence) / 2.0, df=n - 1) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


@pytest.mark.parametrize("n", [2, 3, 4, 7])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_seed_interval_matches_a_plain_t_interval(n: int, confidence: float) -> None:
    v = np.random.default_rng(100 + n).normal(60.0, 3.0, n)
    iv = stats.seed_interval(list(v), confidence=confidence)
    mean, std, low, high = _t_interval(v, confidence)
    assert iv.n == n and iv.kind == "seeds"
    assert iv.mean == pytest.approx(mean, rel=1e-12)
    assert iv.std == pytest.approx(std, rel=1e-12)
    assert iv.low == pytest.approx(low, rel=1e-12) and iv.high == pytest.approx(high, rel=1e-12)
    assert iv.half_width == pytest.approx((high - low) / 2, rel=1e-12)


def test_seed_interval_default_is_95_percent_and_one_value_has_none() -> None:
    v = [1.0, 4.0, 2.5, 3.0]
    assert stats.seed_interval(v).low == pytest.approx(_t_interval(np.array(v), 0.95)[2], rel=1e-12)
    one = stats.seed_interval([7.5])
    assert (one.mean, one.n, one.std, one.low, one.high, one.kind) == (7.5, 1, None, None, None, "none")
    assert one.half_width is None
    with pytest.raises(ValueError):
        stats.seed_interval([])


# ---------------------------------------------------------------- Welch
def _welch(a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[float, float, float, float, float]:
    na, nb = len(a), len(b)
    va, vb = np.var(a, ddof=1) / na, np.var(b, ddof=1) / nb
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    diff = np.mean(b) - np.mean(a)
    half = sps.t.ppf(1.0 - (1.0 - confidence) / 2.0, dof) * se
    p = 2.0 * (1.0 - sps.t.cdf(abs(diff / se), dof))
    return diff, diff - half, diff + half, p, dof


@pytest.mark.parametrize("na, nb", [(2, 2), (3, 5), (6, 2), (4, 4)])
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_welch_matches_satterthwaite_and_scipy(na: int, nb: int, confidence: float) -> None:
    rng = np.random.default_rng(na * 10 + nb)
    a, b = rng.normal(50.0, 1.0, na), rng.normal(51.0, 3.0, nb)
    c = stats.welch(list(a), list(b), confidence=confidence)
    diff, low, high, p, _ = _welch(a, b, confidence)
    assert c.method == "welch" and (c.n_a, c.n_b) == (na, nb)
    assert c.diff == pytest.approx(diff, rel=1e-12)
    assert c.low == pytest.approx(low, rel=1e-9) and c.high == pytest.approx(high, rel=1e-9)
    assert c.p_value == pytest.approx(p, rel=1e-6, abs=1e-12)
    ref = sps.ttest_ind(b, a, equal_var=False)
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    ci = ref.confidence_interval(confidence)
    assert (c.low, c.high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_welch_is_b_minus_a_and_edge_cases() -> None:
    c = stats.welch([10.0, 11.0, 12.0], [20.0, 21.0, 23.0])
    assert c.diff > 0 and c.low > 0 and c.p_value < 0.01
    flipped = stats.welch([20.0, 21.0, 23.0], [10.0, 11.0, 12.0])
    assert flipped.diff == pytest.approx(-c.diff) and flipped.p_value == pytest.approx(c.p_value)
    assert (flipped.low, flipped.high) == pytest.approx((-c.high, -c.low))
    same = stats.welch([3.0, 3.0], [3.0, 3.0, 3.0])  # no spread: equal means tie with p = 1
    assert same.p_value == 1.0 and same.low == same.high == same.diff == 0.0
    apart = stats.welch([3.0, 3.0], [4.0, 4.0])  # no spread, different means: p = 0
    assert apart.p_value == 0.0 and apart.low == apart.high == apart.diff == 1.0
    for a, b in (([1.0], [2.0, 3.0]), ([1.0, 2.0], [3.0])):
        one = stats.welch(a, b)
        assert one.p_value is None and one.low is None and one.method == "none"
        assert one.diff == pytest.approx(np.mean(b) - np.mean(a)) and one.verdict(True) == "untested"


# ---------------------------------------------------------------- verdicts
@pytest.mark.parametrize("diff, p, higher, verdict", [
    (2.0, 0.01, True, "better"), (2.0, 0.01, False, "worse"), (-2.0, 0.01, True, "worse"),
    (-2.0, 0.01, False, "better"), (2.0, 0.2, True, "tie"), (2.0, 1.0 - stats.CONFIDENCE, True, "tie"),
    (2.0, 0.049, True, "better"), (2.0, None, True, "untested")])
def test_verdicts(diff: float, p: float | None, higher: bool, verdict: str) -> None:
    c = stats.Comparison(diff, None, None, p, "welch", 3, 3)
    assert c.verdict(higher) == verdict
    assert c.significant() == (verdict in ("better", "worse"))


def test_pooled_std_is_the_root_mean_of_the_two_sample_variances() -> None:
    a, b = [1.0, 2.0, 6.0], [4.0, 4.5, 5.0, 9.0, 2.0]
    ref = math.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2.0)
    assert stats.pooled_std(a, b) == pytest.approx(ref, rel=1e-12)
    assert stats.pooled_std(b, a) == pytest.approx(ref, rel=1e-12)
    with pytest.raises(ValueError):
        stats.pooled_std([1.0, 2.0], [1.0])


# ---------------------------------------------------------------- bootstrap
def _mean_stat(values: np.ndarray, group: str = "test"):
    return lambda draw: 100.0 * values[draw[group]].mean(axis=1)


def test_resample_draws_with_replacement_per_group() -> None:
    draw = stats.resample({"a": 5, "b": 3}, 400, np.random.default_rng(0))
    assert draw["a"].shape == (400, 5) and draw["b"].shape == (400, 3)
    assert set(np.unique(draw["a"])) == set(range(5)) and set(np.unique(draw["b"])) == set(range(3))
    # with replacement: some resample repeats an item
    assert any(len(set(row)) < 5 for row in draw["a"].tolist())
    full = stats.full_draw({"a": 4})
    assert full["a"].tolist() == [[0, 1, 2, 3]]
    with pytest.raises(ValueError):
        stats.resample({"a": 0}, 10, np.random.default_rng(0))


@pytest.mark.parametrize("confidence", [0.8, 0.95])
def test_bootstrap_interval_is_the_percentile_interval_of_seeded_resamples(confidence: float) -> None:
    values = (np.random.default_rng(5).random(300) < 0.6).astype(float)
    low, high = stats.bootstrap_interval(_mean_stat(values), {"test": 300}, n_boot=500, confidence=confidence, seed=7)
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 300, (500, 300))
    draws = 100.0 * values[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    assert low == pytest.approx(np.quantile(draws, alpha), rel=1e-12)
    assert high == pytest.approx(np.quantile(draws, 1.0 - alpha), rel=1e-12)
    assert low < 100.0 * values.mean() < high


def test_bootstrap_interval_of_a_constant_is_a_point() -> None:
    values = np.ones(50)
    assert stats.bootstrap_interval(_mean_stat(values), {"test": 50}, n_boot=200) == (100.0, 100.0)


def _const_stat(value: float):
    """A per-seed statistic that does not depend on the test items."""
    return lambda draw: np.full(len(next(iter(draw.values()))), value, dtype=np.float64)


def test_paired_bootstrap_p_value_has_the_plus_one_correction() -> None:
    n, n_boot = 40, 999
    zero, one = np.zeros(n), np.ones(n)
    c = stats.paired_bootstrap([_mean_stat(zero)], [_mean_stat(one)], {"test": n}, n_boot=n_boot)
    # every replicate is +100: one-sided tail mass 1 / (B + 1), two-sided twice that
    assert c.diff == 100.0 and c.low == c.high == 100.0
    assert c.p_value == pytest.approx(2.0 / (n_boot + 1), rel=1e-12)
    worse = stats.paired_bootstrap([_mean_stat(one)], [_mean_stat(zero)], {"test": n}, n_boot=n_boot)
    assert worse.diff == -100.0 and worse.p_value == pytest.approx(2.0 / (n_boot + 1), rel=1e-12)
    assert worse.verdict(True) == "worse" and c.verdict(True) == "better"
    same = stats.paired_bootstrap([_mean_stat(one)], [_mean_stat(one)], {"test": n}, n_boot=n_boot)
    assert same.diff == 0.0 and same.p_value == 1.0 and same.verdict(True) == "tie"
    assert (c.n_a, c.n_b, c.method) == (1, 1, "paired bootstrap")


def test_paired_bootstrap_shares_the_item_resample_between_rows() -> None:
    n = 1000
    a = (np.random.default_rng(3).random(n) < 0.5).astype(float)
    b = a.copy()
    b[np.flatnonzero(a == 0)[:10]] = 1.0  # B fixes 10 items and changes nothing else
    c = stats.paired_bootstrap([_mean_stat(a)], [_mean_stat(b)], {"test": n}, n_boot=1000)
    assert c.diff == pytest.approx(1.0)
    # paired: a replicate's difference counts only the fixed items it drew, never below 0;
    # resampling the rows independently would spread it by several points
    assert 0.0 <= c.low < 1.0 < c.high <= 2.5
    assert c.p_value == pytest.approx(2.0 / 1001, rel=1e-12)


def test_paired_bootstrap_resamples_seeds_with_replacement() -> None:
    a = [_const_stat(0.0)] * 3
    b = [_const_stat(0.0), _const_stat(10.0), _const_stat(20.0)]
    c = stats.paired_bootstrap(a, b, {"test": 5}, n_boot=4000)
    assert c.diff == pytest.approx(10.0)
    # the mean of 3 seeds drawn with replacement from {0, 10, 20}: 0 and 20 each with
    # probability 1/27 (> 2.5 %), so the percentile interval is [0, 20]
    assert c.low == pytest.approx(0.0) and c.high == pytest.approx(20.0)
    assert c.p_value == pytest.approx(2.0 * (4000 / 27 + 1) / 4001, rel=0.25)
    c2 = stats.paired_bootstrap(b, a, {"test": 5}, n_boot=4000)
    assert c2.diff == pytest.approx(-10.0) and c2.low == pytest.approx(-20.0) and c2.high == pytest.approx(0.0)


def test_paired_bootstrap_point_estimate_is_the_difference_of_seed_means() -> None:
    rng = np.random.default_rng(11)
    a = [(rng.random(200) < p).astype(float) for p in (0.5, 0.6)]
    b = [(rng.random(200) < p).astype(float) for p in (0.7, 0.72, 0.8)]
    c = stats.paired_bootstrap([_mean_stat(x) for x in a], [_mean_stat(x) for x in b], {"test": 200}, n_boot=300)
    assert c.diff == pytest.approx(100 * (np.mean([x.mean() for x in b]) - np.mean([x.mean() for x in a])))
    assert (c.n_a, c.n_b) == (2, 3) and c.low < c.diff < c.high
    with pytest.raises(ValueError):
        stats.paired_bootstrap([], [_mean_stat(a[0])], {"test": 200})


# ---------------------------------------------------------------- per-item tables
def _plain_mean_per_class(correct: np.ndarray, label: np.ndarray, rows: np.ndarray) -> float:
    per = [correct[rows][label[rows] == c].mean() for c in np.unique(label[rows])]
    return 100.0 * float(np.mean(per))


def _plain_iou(inter: np.ndarray, union: np.ndarray, rows: np.ndarray) -> float:
    si, su = inter[rows].sum(axis=0), union[rows].sum(axis=0)
    return 100.0 * float(np.mean([i / u for i, u in zip(si, su) if u > 0]))


def _random_table(seed: int = 0) -> samples.SampleTable:
    rng = np.random.default_rng(seed)
    n, k = 30, 4
    label = rng.integers(0, k, n)
    label[:k] = np.arange(k)
    pred = np.where(rng.random(n) < 0.6, label, rng.integers(0, k, n))
    grp = samples.accuracy_group([f"x{i}" for i in range(n)], pred, label)
    grp.arrays["score"] = rng.random(n)
    grp.arrays["other"] = (rng.random(n) < 0.3).astype(np.uint8)
    m = 12
    union = rng.integers(0, 6, (m, 5))
    union[:, 4] = 0  # a class no image has: never in the mean
    union[:, 3] = np.where(rng.random(m) < 0.7, 0, union[:, 3])  # a rare class
    inter = np.minimum(union, rng.integers(0, 6, (m, 5)))
    seg = samples.Group([f"s{i}" for i in range(m)], {"inter": inter, "union": union,
                                                      "found": rng.integers(0, 3, m), "boxes": rng.integers(1, 4, m)})
    return samples.SampleTable({"test": grp, "seg": seg}, {
        "top1": samples.accuracy_spec("top1", "test"),
        "mpc": samples.accuracy_spec("mean_per_class", "test"),
        "other": {"kind": "accuracy", "group": "test", "array": "other"},
        "score": {"kind": "mean", "group": "test", "array": "score", "scale": 10.0},
        "plain": {"kind": "mean", "group": "test", "array": "score"},
        "gap": {"kind": "diff", "a": "top1", "b": "other"},
        "avg": {"kind": "average", "of": ["top1", "other", "mpc"]},
        "miou": {"kind": "iou", "group": "seg", "inter": "inter", "union": "union"},
        "recall": {"kind": "ratio", "group": "seg", "num": "found", "den": "boxes"}})


def test_every_metric_kind_matches_a_plain_formula_on_each_resample() -> None:
    t = _random_table()
    g = t.groups["test"].arrays
    s = t.groups["seg"].arrays
    rng = np.random.default_rng(1)
    draw = {"test": rng.integers(0, 30, (150, 30)), "seg": rng.integers(0, 12, (150, 12))}  # > one 64-row chunk
    draw["test"][0] = np.arange(30)
    draw["seg"][0] = np.arange(12)
    correct = g["correct"].astype(float)
    expected = {
        "top1": [100.0 * correct[r].mean() for r in draw["test"]],
        "mpc": [_plain_mean_per_class(correct, g["label"], r) for r in draw["test"]],
        "other": [100.0 * g["other"][r].mean() for r in draw["test"]],
        "score": [10.0 * g["score"][r].mean() for r in draw["test"]],
        "plain": [g["score"][r].mean() for r in draw["test"]],
        "miou": [_plain_iou(s["inter"], s["union"], r) for r in draw["seg"]],
        "recall": [100.0 * s["found"][r].sum() / s["boxes"][r].sum() for r in draw["seg"]],
    }
    expected["gap"] = [x - y for x, y in zip(expected["top1"], expected["other"])]
    expected["avg"] = [(x + y + z) / 3 for x, y, z in zip(expected["top1"], expected["other"], expected["mpc"])]
    for metric, want in expected.items():
        got = t.statistic(metric)(draw)
        assert got.shape == (150,), metric
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=metric)
        assert t.value(metric) == pytest.approx(want[0], rel=1e-12), metric


def test_mean_per_class_averages_over_present_classes_only() -> None:
    label = np.array([0, 0, 0, 1, 2, 2])
    pred = np.array([0, 0, 1, 1, 0, 2])
    t = samples.SampleTable({"t": samples.accuracy_group(list("abcdef"), pred, label)},
                            {"mpc": samples.accuracy_spec("mean_per_class", "t")})
    assert t.value("mpc") == pytest.approx(100 * (2 / 3 + 1 + 1 / 2) / 3)
    # a resample without class 1 averages over classes 0 and 2 only
    got = t.statistic("mpc")({"t": np.array([[0, 1, 2, 4, 5, 5]])})
    assert got.tolist() == pytest.approx([100 * (2 / 3 + 2 / 3) / 2])


def test_table_groups_and_items() -> None:
    t = _random_table()
    assert t.sizes == {"test": 30, "seg": 12}
    assert t.metric_groups("gap") == ["test"] and t.metric_groups("miou") == ["seg"]
    other = _random_table()
    assert t.same_items(other, "top1")
    other.groups["test"].ids = other.groups["test"].ids[::-1].copy()
    assert not t.same_items(other, "top1") and t.same_items(other, "miou")


# ---------------------------------------------------------------- rows of records
def _items(p: float, n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(int)


def test_series_is_ordered_by_seed_and_keeps_direction(tmp_path: Path) -> None:
    d = tmp_path / "r"
    for s, v in ((2, 30.0), (0, 10.0), (1, 20.0)):
        write_rec(d, "m", "tiny", s, "bg_shift", {"bg_gap": v}, hib={"bg_gap": False})
    s = compare.series(store.load_records(d), "bg_shift", "bg_gap")
    assert s.seeds == [0, 1, 2] and s.values == [10.0, 20.0, 30.0] and s.higher_is_better is False
    assert s.tables == [None, None, None]
    assert compare.series(store.load_records(d), "bg_shift", "acc_original") is None
    iv = s.interval()
    assert iv.kind == "seeds" and iv.n == 3 and iv.low == pytest.approx(_t_interval(np.array(s.values), 0.95)[2])


def test_one_seed_with_items_gets_the_bootstrap_interval_of_its_items(tmp_path: Path) -> None:
    d = tmp_path / "r"
    correct = _items(0.7, 400, 0)
    write_rec(d, "m", "tiny", 0, "coco_crop", {}, correct=correct)
    s = compare.series(store.load_records(d), "coco_crop", "top1")
    iv = s.interval()
    low, high = stats.bootstrap_interval(_mean_stat(correct.astype(float)), {"test": 400})
    assert iv.kind == "bootstrap" and iv.n == 1 and iv.std is None
    assert iv.mean == pytest.approx(100 * correct.mean())
    assert (iv.low, iv.high) == pytest.approx((low, high), rel=1e-12)


def test_compare_rows_means_counts_and_test_choice(tmp_path: Path) -> None:
    d = tmp_path / "r"
    a_vals, b_vals = [10.0, 12.0, 11.0], [14.0, 15.5]
    for s, v in enumerate(a_vals):
        write_rec(d, "a", "tiny", s, "knn", {"knn_top1": v})
    for s, v in enumerate(b_vals):
        write_rec(d, "b", "tiny", s, "knn", {"knn_top1": v})
    # per-item tables over the same items: paired; over other items (different ids): Welch
    for s in range(2):
        write_rec(d, "a", "tiny", s, "coco_crop", {}, correct=_items(0.5, 300, s))
        write_rec(d, "b", "tiny", s, "coco_crop", {}, correct=_items(0.6, 300, 10 + s))
    df = compare.compare_rows(store.load_records(d), compare.RowRef("a"), compare.RowRef("b")).set_index("task")
    knn = df.loc["knn"]
    ref = _welch(np.array(a_vals), np.array(b_vals), 0.95)
    assert (knn["n_a"], knn["n_b"], knn["test"]) == (3, 2, "welch")
    assert knn["mean_a"] == pytest.approx(11.0) and knn["mean_b"] == pytest.approx(14.75)
    assert knn["diff"] == pytest.approx(3.75) and knn["p_value"] == pytest.approx(ref[3], rel=1e-6)
    assert (knn["ci_low"], knn["ci_high"]) == pytest.approx((ref[1], ref[2]), rel=1e-9)
    crop = df.loc["coco_crop"]
    assert crop["test"] == "paired bootstrap" and (crop["n_a"], crop["n_b"]) == (2, 2)
    a_recs = compare.select_row(store.load_records(d), compare.RowRef("a"))
    b_recs = compare.select_row(store.load_records(d), compare.RowRef("b"))
    sa, sb = compare.series(a_recs, "coco_crop", "top1"), compare.series(b_recs, "coco_crop", "top1")
    assert compare.paired(sa, sb)
    sb.tables[1] = {**sb.tables[1], "ids": {"test": np.array([f"other{i}" for i in range(300)])}}
    assert not compare.paired(sa, sb) and compare.compare_series(sa, sb).method == "welch"
    sb.tables[1] = None
    assert not compare.paired(sa, sb)


def test_separation_of_a_lower_is_better_metric(tmp_path: Path) -> None:
    d = tmp_path / "r"
    trained, floor = [10.0, 11.0, 12.0], [30.0, 34.0, 32.0]
    for s in range(3):
        write_rec(d, "t", "tiny", s, "bg_shift", {"bg_gap": trained[s], "acc_original": 50.0 + s},
                  hib={"bg_gap": False, "acc_original": True})
        write_rec(d, "f", "tiny", s, "bg_shift", {"bg_gap": floor[s], "acc_original": 50.0 + s},
                  hib={"bg_gap": False, "acc_original": True})
    df = separation.separation(store.load_records(d), compare.RowRef("t"), compare.RowRef("f")).set_index("metric")
    gap = df.loc["bg_gap"]
    pooled = math.sqrt((np.var(trained, ddof=1) + np.var(floor, ddof=1)) / 2)
    assert gap["gap"] == pytest.approx(21.0) and gap["pooled_std"] == pytest.approx(pooled)
    assert gap["ratio"] == pytest.approx(21.0 / pooled)
    assert gap["half_width_trained"] == pytest.approx(sps.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))
    assert gap["half_width_floor"] == pytest.approx(sps.t.ppf(0.975, 2) * 2.0 / math.sqrt(3))
    assert bool(gap["in_range"]) and not gap["passed"]  # the floor's half-width is about 5 points
    same = df.loc["acc_original"]
    assert same["gap"] == pytest.approx(0.0) and not same["passed"]
    assert set(df.index) == {"bg_gap", "acc_original"}  # main metrics the records report


def test_separation_criterion_thresholds(tmp_path: Path) -> None:
    d = tmp_path / "r"
    for s in range(3):
        # a clear gap, but the trained mean sits above the 95 % ceiling
        write_rec(d, "t", "tiny", s, "knn", {"knn_top1": 96.0 + 0.5 * s})
        write_rec(d, "f", "tiny", s, "knn", {"knn_top1": 50.0 + 0.5 * s})
        # fractions: no range check, half-widths compared with 0.03
        write_rec(d, "t", "tiny", s, "bias_diagnostic", {"coupling": 0.99 + 0.001 * s, "position_r2": 0.5 + 0.02 * s})
        write_rec(d, "f", "tiny", s, "bias_diagnostic", {"coupling": 0.1 + 0.001 * s, "position_r2": 0.1 + 0.02 * s})
    df = separation.separation(store.load_records(d), compare.RowRef("t"), compare.RowRef("f"))
    rows = {(r["task"], r["metric"]): r for r in df.to_dict("records")}
    knn = rows[("knn", "knn_top1")]
    assert knn["ratio"] == pytest.approx(46.0 / 0.5) and not knn["in_range"] and not knn["passed"]
    coupling = rows[("bias_diagnostic", "coupling")]
    assert coupling["in_range"] and coupling["passed"]
    r2 = rows[("bias_diagnostic", "position_r2")]  # half-width 0.05 > 0.03
    assert r2["ratio"] == pytest.approx(0.4 / 0.02) and not r2["passed"]
    loose = separation.separation(store.load_records(d), compare.RowRef("t"), compare.RowRef("f"),
                                  separation.Criterion(min_ratio=3.0, max_half_width=6.0))
    assert {(r["task"], r["metric"]): r["passed"] for r in loose.to_dict("records")}[("bias_diagnostic", "position_r2")]


def test_claim_verdicts_follow_the_comparison(tmp_path: Path) -> None:
    from harness.results import claims

    f = tmp_path / "c.yaml"
    f.write_text("source: s\nclaims:\n"
                 "  - id: up\n    statement: raises kNN\n"
                 "    treatment: {method: contracam, recipe: \"{preset}\"}\n"
                 "    baseline: {method: mocov2, recipe: \"{preset}\"}\n"
                 "    metrics: [{task: knn, metric: knn_top1, direction: higher}]\n"
                 "  - id: down\n    statement: lowers kNN\n"
                 "    treatment: {method: contracam, recipe: \"{preset}\"}\n"
                 "    baseline: {method: mocov2, recipe: \"{preset}\"}\n"
                 "    metrics: [{task: knn, metric: knn_top1, direction: lower}]\n")
    parsed = claims.load_claims([f])
    one = tmp_path / "one"
    write_rec(one, "mocov2", "tiny", 0, "knn", {"knn_top1": 10.0})
    write_rec(one, "contracam", "tiny", 0, "knn", {"knn_top1": 90.0})
    assert {v.claim.id: v.verdict for v in claims.evaluate(parsed, store.load_records(one))} == \
        {"up": "untested", "down": "untested"}
    three = tmp_path / "three"
    for s in range(3):
        write_rec(three, "mocov2", "tiny", s, "knn", {"knn_top1": 10.0 + s})
        write_rec(three, "contracam", "tiny", s, "knn", {"knn_top1": 20.0 + s})
    out = {v.claim.id: v for v in claims.evaluate(parsed, store.load_records(three))}
    assert out["up"].verdict == "holds" and out["down"].verdict == "contradicted"
    assert out["up"].diff == pytest.approx(10.0) and out["up"].n == (3, 3) and out["up"].preset == "tiny"
    assert out["up"].rows == ("contracam:tiny", "mocov2:tiny")


def test_only_ok_comparison_records_enter_a_comparison(tmp_path: Path) -> None:
    import json

    d = tmp_path / "r"
    for s in range(3):
        write_rec(d, "a", "tiny", s, "knn", {"knn_top1": 10.0 + s})
        write_rec(d, "b", "tiny", s, "knn", {"knn_top1": 20.0 + s})
    write_rec(d, "b", "tiny", 3, "knn", {"knn_top1": 90.0}, role="dev-run")
    write_rec(d, "b", "tiny", 4, "knn", {"knn_top1": 95.0}, role="plumbing")
    failed = write_rec(d, "b", "tiny", 5, "knn", {"knn_top1": 99.0})
    rec = json.loads(failed.read_text())
    store.write_record(failed, {**rec, "status": "failed", "error": "boom"})
    row = compare.compare_rows(store.load_records(d), compare.RowRef("a"), compare.RowRef("b")).iloc[0]
    assert (row["n_a"], row["n_b"]) == (3, 3) and row["mean_b"] == pytest.approx(21.0)
    assert row["diff"] == pytest.approx(10.0)


@pytest.mark.parametrize("trained, floor, passed", [
    ([48.0, 50.0, 52.0], [42.0, 44.0, 46.0], False),  # ratio exactly 3: not above it
    ([48.5, 50.5, 52.5], [42.0, 44.0, 46.0], True),
    ([93.0, 95.0, 97.0], [10.0, 12.0, 14.0], True),  # mean exactly at the 95 % ceiling: in range
    ([3.0, 5.0, 7.0], [0.0, 0.0, 0.0], True),  # exactly at the 5 % floor: in range
    ([93.5, 95.5, 97.5], [10.0, 12.0, 14.0], False),
])
def test_separation_criterion_boundaries(tmp_path: Path, trained: list[float], floor: list[float],
                                         passed: bool) -> None:
    d = tmp_path / "r"
    for s in range(3):
        write_rec(d, "t", "tiny", s, "knn", {"knn_top1": trained[s]})
        write_rec(d, "f", "tiny", s, "knn", {"knn_top1": floor[s]})
    row = separation.separation(store.load_records(d), compare.RowRef("t"), compare.RowRef("f"),
                                separation.Criterion(max_half_width=10.0)).iloc[0]
    assert bool(row["passed"]) is passed
