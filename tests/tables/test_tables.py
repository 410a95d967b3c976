"""Leaderboards from hand-made records: means/stds, best, derived columns, failures,
published rows, the stale check, regression checks, run comparison, the HTML page."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from harness import leaderboard, regress, store, tables

TORCH = {"name": "torch", "versions": {"torch": "2.14.1"}}
MMDET = {"name": "mmdet", "versions": {"mmdet": "3.3.0"}}


def rec(method: str, seed: int, task: str, metrics: dict, status: str = "ok", version: str = "1",
        framework: dict = TORCH, hib: dict | None = None) -> dict:
    return {"kind": "task", "method": method, "recipe": "tiny", "seed": seed, "task": task, "task_type": task,
            "task_version": version, "status": status, "metrics": metrics if status == "ok" else {},
            "higher_is_better": hib or {k: k != "bg_gap" for k in metrics}, "unit_key": f"{method}{seed}{task}",
            "config_hash": "h", "pretrain_data": "synthetic", "epochs": 2, "framework": framework,
            "error": None if status == "ok" else "RuntimeError: boom"}


@pytest.fixture
def records(tmp_path: Path) -> Path:
    d = tmp_path / "records"
    rows = [rec("mocov2", 0, "knn", {"knn_top1": 40.0}), rec("mocov2", 1, "knn", {"knn_top1": 44.0}),
            rec("contracam", 0, "knn", {"knn_top1": 50.0}), rec("contracam", 1, "knn", {"knn_top1": 52.0}),
            rec("mocov2", 0, "bg_shift", {"acc_original": 80.0, "acc_mixed_same": 70.0, "acc_mixed_rand": 50.0}),
            rec("contracam", 0, "bg_shift", {"acc_original": 78.0, "acc_mixed_same": 66.0, "acc_mixed_rand": 60.0}),
            rec("mocov2", 0, "coco_det", {"bbox_AP": 10.0}, framework=MMDET),
            rec("contracam", 0, "coco_det", {}, status="failed", framework=MMDET),
            rec("contracam", 1, "knn", {"knn_top1": 99.0}, version="2")]
    for i, r in enumerate(rows):
        store.write_record(d / f"r{i}.json", r)
    return d


def cells(table: tables.Table) -> dict[tuple[str, str, str], tables.Cell]:
    return {(row[0], c.task + ":" + c.metric, c.version): cell for (row, c), cell in table.cells.items()}


def test_means_std_best_and_versions(records: Path) -> None:
    t = tables.build(store.load_records(records))
    c = cells(t)
    assert c[("mocov2", "knn:knn_top1", "1")].mean == 42.0
    assert c[("mocov2", "knn:knn_top1", "1")].std == pytest.approx(2.8284, abs=1e-3)
    text = c[("contracam", "knn:knn_top1", "1")].text()
    assert text.startswith("51.00 ± 1.41 [") and text.endswith("] n=2")  # t interval over 2 seeds
    # a different task version never shares a column
    assert c[("contracam", "knn:knn_top1", "2")].values == [99.0]
    col = next(col for col in t.columns if col.task == "knn" and col.version == "1")
    assert t.best(col)[0] == "contracam" and col.header == "knn_top1 ↑"


def test_derived_bg_gap_lower_is_better(records: Path) -> None:
    t = tables.build(store.load_records(records))
    c = cells(t)
    assert c[("mocov2", "bg_shift:bg_gap", "1")].mean == 20.0
    col = next(col for col in t.columns if col.metric == "bg_gap")
    assert col.header == "bg_gap ↓" and t.best(col)[0] == "contracam"


def test_failed_unit_is_shown_not_dropped(records: Path) -> None:
    t = tables.build(store.load_records(records))
    md = tables.to_markdown(t)
    assert cells(t)[("contracam", "coco_det:bbox_AP", "1")].text() == "failed"
    assert "failed" in md and "coco_det v1 (mmdet 3.3.0)" in md


def test_published_rows_marked_and_not_averaged(records: Path, tmp_path: Path) -> None:
    ref = pd.DataFrame([{"method": "MoCo v2", "pretrain_data": "COCO", "epochs": 800, "task": "coco_det",
                         "metric": "bbox_AP", "value": 38.9, "framework": "mmdet", "source": "paper X, Tab. 1"},
                        {"method": "MoCo v2", "pretrain_data": "COCO", "epochs": 800, "task": "coco_det",
                         "metric": "bbox_AP", "value": 1.0, "framework": "detectron2", "source": "other"}])
    t = tables.build(store.load_records(records), ref)
    pub = [r for r in t.rows if r[1] == tables.PUBLISHED]
    assert pub == [("MoCo v2 †", "published", "COCO", 800)]
    col = next(col for col in t.columns if col.metric == "bbox_AP")
    assert t.best(col)[0] == "mocov2"  # published numbers never win or mix
    assert t.cells[(pub[0], col)].values == [38.9]
    assert "published number" in tables.to_markdown(t)


def test_formats_render(records: Path) -> None:
    t = tables.build(store.load_records(records))
    csv = pd.read_csv(pd.io.common.StringIO(tables.to_csv(t)))
    assert {"mean", "std", "best", "framework"} <= set(csv.columns)
    tex = tables.to_latex(t)
    assert r"\begin{tabular}" in tex
    # 51 +- 1.4 vs 42 +- 2.8 over two seeds each is not significant (Welch): a tie, both bold
    assert r"\textbf{51.00 $\pm$ 1.41 [" in tex and r"\textbf{42.00 $\pm$ 2.83 [" in tex


def test_stale_check(records: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "tables"
    assert leaderboard.tables_main([records], None, None, out, check=False) == 0
    assert leaderboard.tables_main([records], None, None, out, check=True) == 0
    store.write_record(records / "new.json", rec("byol", 0, "knn", {"knn_top1": 30.0}))
    assert leaderboard.tables_main([records], None, None, out, check=True) == 1
    assert "stale" in capsys.readouterr().out


def test_regression_check_pass_and_fail(records: Path, tmp_path: Path) -> None:
    df = store.load_records(records)
    exp = {"method": "mocov2", "suite": "s", "seed": 0,
           "metrics": {"knn": {"knn_top1": {"value": 41.0, "tol": 1.5}}, "coco_det": {"bbox_AP": {"value": 10, "tol": 0}}}}
    assert [c.status for c in regress.compare_expected(df, exp)] == ["pass", "pass"]
    exp["metrics"]["knn"]["knn_top1"]["value"] = 45.0
    checks = regress.compare_expected(df, exp)
    assert [c.status for c in checks] == ["FAIL", "pass"]
    assert "1 passed, 1 failed" in regress.format_checks(checks)
    exp["method"] = "contracam"
    assert [c.status for c in regress.compare_expected(df, exp)] == ["FAIL", "failed-unit"]


def test_html_page_in_headless_browser(records: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh installs it when run as root)")
    t = tables.build(store.load_records(records))
    page = tmp_path / "leaderboard.html"
    from harness import tables_html

    page.write_text(tables_html.page([t]))
    probe = ("<script>window.onload=function(){var t=document.getElementById('t0');"
             "var rows=t.tBodies[0].rows.length;var bars=document.querySelectorAll('rect.bar').length;"
             "var pts=document.querySelectorAll('circle.pt').length;"
             "t.tHead.rows[0].cells[0].click();var first=t.tBodies[0].rows[0].cells[0].textContent;"
             "document.title=JSON.stringify({rows:rows,bars:bars,pts:pts,first:first});};</script>")
    page.write_text(page.read_text().replace("</body>", probe + "</body>"))
    res = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    title = res.stdout.split("<title>")[1].split("</title>")[0]
    info = json.loads(title.replace("&quot;", '"'))
    assert info["rows"] == len(t.rows) == 2
    assert info["bars"] > 0 and info["pts"] > 0
    assert info["first"] == "contracam"  # sorted ascending by method after the click
