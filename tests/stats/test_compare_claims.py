"""`harness compare` and `harness claims` on hand-made records with known differences."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from record_fixtures import write_rec

from harness.results import claims, compare, store, tables
from harness.core.errors import ConfigError, HarnessError

ROOT = Path(__file__).resolve().parents[2]


def items(p: float, n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(int)


@pytest.fixture
def records(tmp_path: Path) -> Path:
    d = tmp_path / "records"
    for s in range(3):
        # coco_crop: per-item tables, B better by ~10 points on 1500 shared items
        write_rec(d, "mocov2", "tiny", s, "coco_crop", {}, correct=items(0.6, 1500, s))
        write_rec(d, "contracam", "tiny", s, "coco_crop", {}, correct=items(0.7, 1500, 10 + s))
        # bg_shift: seed values only; bg-mixup lowers the gap clearly, object-aware crop does not
        write_rec(d, "mocov2", "tiny", s, "bg_shift", {"bg_gap": 20.0 + s}, hib={"bg_gap": False})
        write_rec(d, "contracam", "tiny-bgmix", s, "bg_shift", {"bg_gap": 10.0 + s}, hib={"bg_gap": False})
        write_rec(d, "contracam", "tiny", s, "bg_shift", {"bg_gap": 21.0 - s}, hib={"bg_gap": False})
        # a plumbing record never counts
        write_rec(d, "mocov2", "tiny", s, "coco_det", {"bbox_AP": 1.0 + s}, role="plumbing")
        write_rec(d, "contracam", "tiny", s, "coco_det", {"bbox_AP": 9.0 + s}, role="plumbing")
    return d


def test_compare_paired_bootstrap_and_welch(records: Path) -> None:
    df = compare.compare_rows(store.load_records(records), compare.RowRef("mocov2"), compare.RowRef("contracam", "tiny"))
    crop = df[df.task == "coco_crop"].iloc[0]
    assert crop["test"] == "paired bootstrap" and 6 < crop["diff"] < 14 and crop["p_value"] < 0.01
    assert crop["ci_low"] < crop["diff"] < crop["ci_high"] and crop["verdict"] == "better"
    gap = df[df.task == "bg_shift"].iloc[0]
    assert gap["test"] == "welch" and gap["diff"] == pytest.approx(-1.0) and gap["verdict"] == "tie"
    assert "coco_det" not in set(df.task)  # plumbing records are no comparison
    text = compare.format_comparison(df, compare.RowRef("mocov2"), compare.RowRef("contracam", "tiny"))
    assert "paired bootstrap" in text and "better" in text


def test_compare_names_missing_and_ambiguous_rows(records: Path) -> None:
    recs = store.load_records(records)
    with pytest.raises(HarnessError, match="several recipes"):
        compare.compare_rows(recs, compare.RowRef("mocov2"), compare.RowRef("contracam"))
    with pytest.raises(HarnessError, match="no records of row byol"):
        compare.compare_rows(recs, compare.RowRef("byol"), compare.RowRef("mocov2"))


def test_cli_compare(records: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "harness.cli", "compare", "mocov2", "contracam:tiny-bgmix",
                          "--records", str(records)], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "bg_shift" in res.stdout and "better" in res.stdout and "welch" in res.stdout


CLAIMS = """source: "a paper"
claims:
  - id: bgmix-gap
    statement: background mixup lowers BG-Gap
    treatment: {method: contracam, recipe: "{preset}-bgmix"}
    baseline: {method: mocov2, recipe: "{preset}"}
    metrics: [{task: bg_shift, metric: bg_gap, direction: lower}]
  - id: crop-raises
    statement: the object-aware crop raises COCO-Crop and lowers BG-Gap
    treatment: {method: contracam, recipe: "{preset}"}
    baseline: {method: mocov2, recipe: "{preset}"}
    metrics:
      - {task: coco_crop, metric: top1, direction: higher}
      - {task: bg_shift, metric: bg_gap, direction: lower}
      - {task: coco_det, metric: bbox_AP, direction: higher}
  - id: crop-lowers
    statement: a claim the records contradict
    treatment: {method: contracam, recipe: "{preset}"}
    baseline: {method: mocov2, recipe: "{preset}"}
    metrics: [{task: coco_crop, metric: top1, direction: lower}]
"""


def test_claims_three_verdicts(records: Path, tmp_path: Path) -> None:
    f = tmp_path / "paper.yaml"
    f.write_text(CLAIMS)
    out = claims.evaluate(claims.load_claims([f]), store.load_records(records))
    got = {(v.claim.id, v.target.task): v.verdict for v in out}
    assert got == {("bgmix-gap", "bg_shift"): "holds", ("crop-raises", "coco_crop"): "holds",
                   ("crop-raises", "bg_shift"): "not significant", ("crop-raises", "coco_det"): "no records",
                   ("crop-lowers", "coco_crop"): "contradicted"}
    gap = next(v for v in out if v.claim.id == "bgmix-gap")
    assert gap.diff == pytest.approx(-10.0) and gap.high < 0 and gap.test == "welch"
    table = claims.verdict_table(out)
    assert set(table["verdict"]) == {"holds", "not significant", "no records", "contradicted"}
    assert "1 contradicted" in claims.format_verdicts(out)


@pytest.mark.parametrize("edit, message", [
    (("task: bg_shift, metric: bg_gap", "task: bg_shfit, metric: bg_gap"), "unknown task in"),
    (("metric: bg_gap, direction: lower}]", "metric: bg_gapp, direction: lower}]"), "reports no metric 'bg_gapp'"),
    (("direction: lower}]", "direction: down}]"), "direction"),
    (("method: mocov2", "method: mocov9"), "unknown method"),
    (("statement: background", "statment: background"), "unknown key"),
])
def test_malformed_claims_name_file_and_key(tmp_path: Path, records: Path, edit: tuple[str, str], message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(CLAIMS.replace(*edit, 1))
    with pytest.raises(ConfigError, match=message) as err:
        claims.load_claims([f])
    assert str(f) in str(err.value)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "harness.cli", "claims", "--file", str(f), "--records", str(records)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2 and str(f) in res.stderr and res.stdout == ""


def test_shipped_claims_files_are_valid() -> None:
    shipped = claims.load_claims()
    ids = {c.id for c in shipped}
    assert len(shipped) >= 5 and len(ids) == len(shipped)


def test_tables_mark_best_only_when_significant(records: Path) -> None:
    t = tables.build(store.load_records(records))
    crop = next(c for c in t.columns if c.task == "coco_crop")
    gap = next(c for c in t.columns if c.task == "bg_shift")
    rows = {r[:2]: r for r in t.rows}
    assert t.marked(crop) == {rows[("contracam", "tiny")]}
    # bgmix is significantly lowest; the other two tie with each other but not with it
    assert t.marked(gap) == {rows[("contracam", "tiny-bgmix")]}
    assert all(c.task != "coco_det" for c in t.columns)  # plumbing stays out of the comparison table
    cell = t.cells[(rows[("mocov2", "tiny")], crop)]
    iv = cell.interval()
    assert iv.kind == "seeds" and iv.n == 3 and "n=3" in cell.text()


def test_tables_mark_ties_alike(tmp_path: Path) -> None:
    d = tmp_path / "r"
    for s in range(3):
        write_rec(d, "a", "tiny", s, "knn", {"knn_top1": 50.0 + s})
        write_rec(d, "b", "tiny", s, "knn", {"knn_top1": 50.5 + s})
        write_rec(d, "c", "tiny", s, "knn", {"knn_top1": 20.0 + s})
    t = tables.build(store.load_records(d))
    col = t.columns[0]
    assert {r[0] for r in t.marked(col)} == {"a", "b"}
    one = tmp_path / "one"
    write_rec(one, "a", "tiny", 0, "knn", {"knn_top1": 50.0})
    write_rec(one, "b", "tiny", 0, "knn", {"knn_top1": 60.0})
    t1 = tables.build(store.load_records(one))
    assert t1.marked(t1.columns[0]) == frozenset()  # one seed each, no per-item values: untested


def test_separation_passes_a_clear_gap_and_fails_noise(records: Path) -> None:
    from harness.results import separation

    recs = store.load_records(records)
    crop = separation.separation(recs, compare.RowRef("contracam", "tiny"), compare.RowRef("mocov2"))
    row = crop[crop.task == "coco_crop"].iloc[0]
    assert row["gap"] > 5 and row["ratio"] > 3 and row["n_trained"] == 3
    gap = crop[crop.task == "bg_shift"].iloc[0]  # lower is better: mean 20 vs 21, seed std 1
    assert gap["gap"] == pytest.approx(1.0) and gap["ratio"] == pytest.approx(1.0) and not gap["passed"]
    assert "coco_det" not in set(crop.task)  # plumbing: left out
    mix = separation.separation(recs, compare.RowRef("contracam", "tiny-bgmix"), compare.RowRef("mocov2"))
    row = mix.iloc[0]
    assert row["gap"] == pytest.approx(10.0) and row["ratio"] == pytest.approx(10.0)
    assert row["half_width_trained"] == pytest.approx(4.303 / 3 ** 0.5, rel=1e-3) and row["passed"]
    text = separation.format_separation(mix, compare.RowRef("contracam", "tiny-bgmix"), compare.RowRef("mocov2"))
    assert "PASS" in text and "1 of 1 main metrics pass" in text
    text = separation.format_separation(crop, compare.RowRef("contracam", "tiny"), compare.RowRef("mocov2"))
    assert "FAIL (gap)" in text
