"""Baselines derived from seed records, and `harness check` against them: the band is the
prediction interval of a new seed widened by the measured cross-CPU spread, directional
checks appear only where a floor is significantly and clearly below, bad baseline files
exit 2 naming the key, and a records folder without the method exits 3."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps

from harness.results import baselines, regress
from harness.results.tables import record_arch

ROOT = Path(__file__).resolve().parents[2]


def rec(method: str, recipe: str, seed: int, task: str, metrics: dict[str, float], arch: str = "resnet18",
        cpu: str = "cpu A", status: str = "ok") -> dict:
    return {"kind": "task", "method": method, "recipe": recipe, "seed": seed, "task": task,
            "task_type": task.split(".")[0], "status": status, "role": "comparison", "preset": "tiny",
            "metrics": metrics if status == "ok" else {}, "higher_is_better": {k: True for k in metrics},
            "config": {"method": {"arch": arch}}, "versions": {"cpu": cpu}, "samples": None, "path": None}


TRAINED = {"knn": [70.0, 72.0, 71.0], "coco_crop": [60.0, 61.0, 62.0]}
FLOOR = {"knn": [40.0, 41.0, 39.5], "coco_crop": [61.0, 60.5, 61.5]}
METRIC = {"knn": "knn_top1", "coco_crop": "top1"}


def records(trained: dict[str, list[float]] = TRAINED, floor: dict[str, list[float]] = FLOOR,
            floor_arch: str = "resnet18") -> pd.DataFrame:
    rows = []
    for task, values in trained.items():
        rows += [rec("mocov2", "tiny", s, task, {METRIC[task]: v}) for s, v in enumerate(values)]
    for task, values in floor.items():
        rows += [rec("random", "tiny", s, task, {METRIC[task]: v}, arch=floor_arch) for s, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_band_is_the_prediction_interval_of_a_new_seed() -> None:
    derived, _ = baselines.derive_all(records(), None)
    assert set(derived) == {"mocov2-tiny"}  # floors get no baseline of their own
    knn = derived["mocov2-tiny"]["checks"]["knn"]["knn_top1"]
    v = np.array(TRAINED["knn"])
    half = sps.t.ppf(0.975, 2) * v.std(ddof=1) * math.sqrt(1 + 1 / 3)
    assert knn["mean"] == pytest.approx(71.0) and knn["n"] == 3
    assert knn["band"] == pytest.approx(half, abs=1e-3)


def test_cross_cpu_spread_widens_the_band_by_the_largest_same_seed_difference() -> None:
    other = pd.DataFrame([rec("mocov2", "tiny", 0, "knn", {"knn_top1": 66.0}, cpu="cpu B"),
                          rec("mocov2", "tiny", 1, "knn", {"knn_top1": 73.0}, cpu="cpu B")])
    plain, _ = baselines.derive_all(records(), None)
    wide, cpus = baselines.derive_all(records(), other)
    a, b = plain["mocov2-tiny"]["checks"]["knn"]["knn_top1"], wide["mocov2-tiny"]["checks"]["knn"]["knn_top1"]
    assert b["cpu"] == pytest.approx(4.0)  # |66 - 70| beats |73 - 72|
    assert b["band"] == pytest.approx(a["band"] + 4.0, abs=2e-3)
    assert cpus == ["cpu A", "cpu B"]


def test_directional_check_only_where_the_floor_is_clearly_below() -> None:
    derived, _ = baselines.derive_all(records(), None)
    checks = derived["mocov2-tiny"]["checks"]
    above = checks["knn"]["knn_top1"]["above"]["random:tiny"]
    spec = checks["knn"]["knn_top1"]
    floor_mean = float(np.mean(FLOOR["knn"]))
    assert above["floor_mean"] == pytest.approx(floor_mean, abs=1e-3)
    # midway between the floor's mean and the band's lower edge: every in-band run clears it
    assert above["threshold"] == pytest.approx((floor_mean + spec["mean"] - spec["band"]) / 2, abs=2e-3)
    assert floor_mean < above["threshold"] < spec["mean"] - spec["band"]
    assert "above" not in checks["coco_crop"]["top1"]  # the floor wins coco_crop here


def test_floors_of_another_backbone_are_not_compared() -> None:
    derived, _ = baselines.derive_all(records(floor_arch="vit_tiny_patch16"), None)
    assert "above" not in derived["mocov2-tiny"]["checks"]["knn"]["knn_top1"]


def test_checks_pass_inside_the_band_and_fail_like_a_floor(tmp_path: Path) -> None:
    derived, _ = baselines.derive_all(records(), None)
    base = derived["mocov2-tiny"]
    good = pd.DataFrame([rec("mocov2", "tiny", 0, "knn", {"knn_top1": 70.5}),
                         rec("mocov2", "tiny", 0, "coco_crop", {"top1": 61.0})])
    assert all(c.status == "pass" for c in regress.evaluate(good, base))
    untrained = pd.DataFrame([rec("mocov2", "tiny", 0, "knn", {"knn_top1": 41.0}),
                              rec("mocov2", "tiny", 0, "coco_crop", {"top1": 61.0})])
    failed = {(c.task, c.kind) for c in regress.evaluate(untrained, base) if c.status != "pass"}
    assert failed == {("knn", "band"), ("knn", "above random:tiny")}
    broken = pd.DataFrame([rec("mocov2", "tiny", 0, "knn", {"knn_top1": 70.5}, status="failed")])
    assert {c.status for c in regress.evaluate(broken, base, tasks=["knn"])} == {"failed-unit"}


def harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def write_baseline(path: Path, edit=None) -> Path:
    derived, _ = baselines.derive_all(records(), None)
    data = derived["mocov2-tiny"]
    if edit:
        edit(data)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("edit, key", [
    (lambda d: d.update(method="mocov9"), "mocov9"),
    (lambda d: d["checks"].update(knnn=d["checks"]["knn"]), "checks.knnn"),
    (lambda d: d["checks"]["knn"].update(top5=d["checks"]["knn"]["knn_top1"]), "checks.knn.top5"),
    (lambda d: d["checks"]["knn"]["knn_top1"].pop("mean"), "checks.knn.knn_top1"),
    (lambda d: d["checks"]["knn"]["knn_top1"]["above"]["random:tiny"].pop("threshold"), "above.random:tiny"),
])
def test_bad_baseline_file_exits_2_naming_file_and_key(tmp_path: Path, edit, key: str) -> None:
    path = write_baseline(tmp_path / "b.yaml", edit)
    res = harness("check", "--baseline", str(path), "--records", str(tmp_path))
    assert res.returncode == 2, res.stdout + res.stderr
    assert str(path) in res.stderr and key in res.stderr


def test_check_on_records_without_the_method_exits_3(tmp_path: Path) -> None:
    path = write_baseline(tmp_path / "b.yaml")
    (tmp_path / "records").mkdir()
    res = harness("check", "--baseline", str(path), "--records", str(tmp_path / "records"))
    assert res.returncode == 3, res.stdout + res.stderr
    assert "mocov2:tiny" in res.stderr and "records" in res.stderr


def test_committed_baselines_hold_for_their_own_records_and_refuse_the_floors() -> None:
    """Every curated seed sits inside its row's bands; every seed of an untrained floor of
    the same backbone, checked as if it were the method's run, fails the check (where the
    method is not significantly ahead of that floor anywhere, through its bands)."""
    from harness.results import store

    recs = store.load_records([ROOT / "results" / "records"])
    files = sorted((ROOT / "results" / "baselines").glob("*.yaml"))
    assert {f.stem for f in files} == {"mocov2-tiny", "byol-tiny", "densecl-tiny", "contracam-tiny",
                                       "contracam-tiny-bgmix", "orl-tiny", "d3ssl-tiny", "d3ssl-tiny-base",
                                       "mocov3-tiny"}
    for f in files:
        base = baselines.load(f)
        own = regress.evaluate(regress.row_records(recs, base, f), base)
        assert own and all(c.status == "pass" for c in own), (f, [c for c in own if c.status != "pass"][:3])
        assert any(s.get("above") for ms in base["checks"].values() for s in ms.values()), \
            f"{f}: no directional check against an untrained floor"
        floors = recs[(recs["method"] == "random")]
        for (recipe, seed), seed_rows in floors.groupby(["recipe", "seed"]):
            if record_arch(seed_rows.iloc[0].to_dict()) == base["arch"]:
                as_method = seed_rows.assign(method=base["method"], recipe=base["recipe"])
                assert any(c.status == "FAIL" for c in regress.evaluate(as_method, base)), (f, recipe, seed)


def test_check_reads_the_tasks_the_records_hold_unless_a_suite_is_named(tmp_path: Path) -> None:
    from harness.results import store

    path = write_baseline(tmp_path / "b.yaml")
    store.write_record(tmp_path / "records" / "knn.json", {k: v for k, v in rec("mocov2", "tiny", 0, "knn",
                       {"knn_top1": 71.0}).items() if k not in ("path", "versions", "samples")} |
                       {"task_version": "1", "unit_key": "k", "config_hash": "h", "higher_is_better": {"knn_top1": True}})
    ok = harness("check", "--baseline", str(path), "--records", str(tmp_path / "records"))
    assert ok.returncode == 0 and "0 failed" in ok.stdout, ok.stdout + ok.stderr
    suite = harness("check", "--baseline", str(path), "--records", str(tmp_path / "records"), "--suite", "smoke")
    assert suite.returncode == 1 and "missing" in suite.stdout, suite.stdout + suite.stderr
