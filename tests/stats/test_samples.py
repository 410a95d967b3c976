"""Per-item tables: every metric kind reproduces its number, files round-trip without
pickle, and a table that disagrees with the reported metrics is refused."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.results import samples
from harness.core.errors import HarnessError


def table() -> samples.SampleTable:
    pred = np.array([0, 1, 1, 2, 2, 2])
    label = np.array([0, 1, 2, 2, 2, 0])
    same = samples.accuracy_group([f"i{k}" for k in range(6)], pred, label)
    same.arrays["correct_other"] = np.array([1, 0, 0, 1, 0, 0], np.uint8)
    inter = np.array([[2, 0], [1, 1]])
    union = np.array([[3, 1], [2, 1]])
    seg = samples.Group(["a.png", "b.png"], {"inter": inter, "union": union, "found": np.array([1, 0]),
                                             "boxes": np.array([1, 2])})
    return samples.SampleTable({"test": same, "seg": seg}, {
        "top1": samples.accuracy_spec("top1", "test"),
        "mpc": samples.accuracy_spec("mean_per_class", "test"),
        "other": {"kind": "accuracy", "group": "test", "array": "correct_other"},
        "gap": {"kind": "diff", "a": "top1", "b": "other"},
        "avg": {"kind": "average", "of": ["top1", "other"]},
        "miou": {"kind": "iou", "group": "seg", "inter": "inter", "union": "union"},
        "recall": {"kind": "ratio", "group": "seg", "num": "found", "den": "boxes"}})


def test_every_kind_gives_its_number() -> None:
    t = table()
    assert t.value("top1") == pytest.approx(400 / 6)
    assert t.value("mpc") == pytest.approx(100 * (1 / 2 + 1 + 2 / 3) / 3)
    assert t.value("gap") == pytest.approx(400 / 6 - 200 / 6)
    assert t.value("avg") == pytest.approx((400 / 6 + 200 / 6) / 2)
    assert t.value("miou") == pytest.approx(100 * (3 / 5 + 1 / 2) / 2)
    assert t.value("recall") == pytest.approx(100 / 3)


def test_round_trip_without_pickle(tmp_path: Path) -> None:
    t = table()
    path = tmp_path / "s.npz"
    path.write_bytes(t.to_bytes())
    back = samples.SampleTable.load(path)
    assert {m: back.value(m) for m in t.metrics} == pytest.approx({m: t.value(m) for m in t.metrics})
    assert back.same_items(t, "gap") and back.metric_groups("avg") == ["test"]
    with np.load(path, allow_pickle=False) as z:
        assert "test/ids" in z.files


def test_mismatch_with_the_result_is_refused() -> None:
    t = table()
    good = {m: t.value(m) for m in t.metrics}
    t.check_against(good)
    with pytest.raises(HarnessError, match="top1"):
        t.check_against({**good, "top1": good["top1"] + 1.0})
    with pytest.raises(HarnessError, match="does not report"):
        t.check_against({k: v for k, v in good.items() if k != "miou"})


def test_malformed_specs_and_files(tmp_path: Path) -> None:
    g = samples.accuracy_group(["a"], np.array([1]), np.array([1]))
    with pytest.raises(ValueError, match="unknown group"):
        samples.SampleTable({"test": g}, {"top1": {"kind": "accuracy", "group": "nope", "array": "correct"}})
    with pytest.raises(ValueError, match="unknown metric"):
        samples.SampleTable({"test": g}, {"gap": {"kind": "diff", "a": "x", "b": "y"}})
    with pytest.raises(ValueError, match="rows"):
        samples.Group(["a", "b"], {"correct": np.array([1])})
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(HarnessError, match="bad.npz"):
        samples.SampleTable.load(bad)


def test_resampling_an_accuracy_reproduces_the_value_at_full_draw() -> None:
    t = table()
    stat = t.statistic("top1")
    draws = {"test": np.array([[0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 0, 0]]), "seg": np.zeros((2, 2), int)}
    assert stat(draws) == pytest.approx([400 / 6, 100.0])
