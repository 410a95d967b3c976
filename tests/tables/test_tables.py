"""Leaderboards from hand-made records: means/stds, best, derived columns, failures,
published rows, the stale check, regression checks, run comparison, the HTML page."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from harness.results import charts, leaderboard, regress, store, tables, tables_html

ROOT = Path(__file__).resolve().parents[2]
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


def test_published_numbers_stay_out_of_the_computed_columns(records: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ref = pd.DataFrame([{"method": "MoCo v2", "pretrain_data": "COCO", "epochs": 800, "task": "coco_det",
                         "metric": "bbox_AP", "value": 38.9, "framework": "mmdet", "setting": "Mask R-CNN FPN 1x",
                         "source": "paper X, Tab. 1"}])
    monkeypatch.setattr(tables, "load_reference", lambda folder=None: ref)
    contents = leaderboard.build_contents([records])
    main = contents.tables["LEADERBOARD"]
    assert all(r[0] != "MoCo v2" for r in main.rows)
    assert all(v != 38.9 for cell in main.cells.values() for v in cell.values)
    files = leaderboard.render(contents)
    assert "38.9" in files["REFERENCE.md"] and "38.9" not in files["LEADERBOARD.md"]
    html = files["leaderboard.html"]
    assert "id='t-published'" in html and "paper X, Tab. 1" in html
    assert html.index("id='t-main'") < html.index("id='t-published'")


def test_intervals_respect_the_metric_bounds(tmp_path: Path) -> None:
    for seed, v in enumerate([99.0, 100.0, 95.0]):
        store.write_record(tmp_path / "r" / f"{seed}.json", rec("mocov2", seed, "knn", {"knn_top1": v}))
    table = tables.build(store.load_records(tmp_path / "r"))
    col = table.columns[0]
    iv = table.cells[(table.rows[0], col)].interval(tables.metric_bounds(col))
    assert iv.high == 100.0 and iv.low < 100.0
    assert "100.00]" in table.cell_text(table.rows[0], col)


def test_the_plumbing_table_marks_nothing(tmp_path: Path) -> None:
    for method, values in (("mocov2", [10.0, 10.5, 11.0]), ("contracam", [30.0, 30.5, 31.0])):
        for seed, v in enumerate(values):
            r = {**rec(method, seed, "coco_det", {"bbox_AP": v}, framework=MMDET), "role": "plumbing"}
            store.write_record(tmp_path / "r" / f"{method}{seed}.json", r)
    recs = store.load_records(tmp_path / "r")
    plumbing = tables.build(recs, role="plumbing")
    assert len(plumbing.rows) == 2 and not any(plumbing.marked(c) for c in plumbing.columns)
    assert "**" not in tables.to_markdown(plumbing)


def test_formats_render(records: Path) -> None:
    t = tables.build(store.load_records(records))
    csv = pd.read_csv(pd.io.common.StringIO(tables.to_csv(t)))
    assert {"mean", "std", "best", "framework"} <= set(csv.columns)
    tex = tables.to_latex(t)
    assert r"\begin{tabular}" in tex
    assert r"knn\_top1" in tex and r"\\_" not in tex  # escaped once
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
    base = {"method": "mocov2", "recipe": "tiny", "checks": {
        "knn": {"knn_top1": {"mean": 41.0, "band": 1.5, "above": {"random:tiny": {"threshold": 39.5}}}},
        "coco_det": {"bbox_AP": {"mean": 10.0, "band": 0.5}}}}
    rows = regress.row_records(df, base, records)
    checks = regress.evaluate(rows, base)
    assert [(c.seed, c.kind, c.status) for c in checks] == [
        (0, "band", "pass"), (0, "above random:tiny", "pass"), (1, "band", "FAIL"), (1, "above random:tiny", "pass"),
        (0, "band", "pass"), (1, "band", "missing")]
    assert "4 passed, 2 failed (2 directional" in regress.format_checks(checks)
    base["method"] = "contracam"
    statuses = {(c.task, c.seed): c.status for c in regress.evaluate(regress.row_records(df, base, records), base)}
    assert statuses[("coco_det", 0)] == "failed-unit"


def floor_records(tmp_path: Path, floor_arch: str = "resnet18") -> Path:
    """knn: the floor wins; instance probe: the method is well ahead; linear probe: a tie."""
    d = tmp_path / "floor-records"
    values = {"knn": ("knn_top1", [60.0, 61.0, 62.0], [80.0, 81.0, 82.0]),
              "coco_crop": ("top1", [70.0, 71.0, 72.0], [50.0, 51.0, 50.5]),
              "linear_probe": ("top1", [70.0, 73.0, 71.0], [71.0, 70.0, 72.5])}
    for task, (metric, trained, floor) in values.items():
        for seed in range(3):
            for method, v, arch in (("mocov2", trained[seed], "resnet18"), ("random", floor[seed], floor_arch)):
                r = rec(method, seed, task, {metric: v})
                r["config"] = {"method": {"arch": arch}}
                store.write_record(d / f"{method}-{task}-{seed}.json", r)
    return d


def test_cells_a_floor_is_not_worse_than_are_marked(tmp_path: Path) -> None:
    table = tables.build(store.load_records(floor_records(tmp_path)))
    marked = {c.task for c in table.columns if table.floor_wins(("mocov2", "tiny", "resnet18", "synthetic", "2 ep"), c)}
    assert marked == {"knn", "linear_probe"}
    assert not any(table.floor_wins(("random", "tiny", "resnet18", "synthetic", "2 ep"), c) for c in table.columns)
    md = tables.to_markdown(table)
    assert tables.FLOOR_NOTE in md and md.count(f" {tables.FLOOR_MARK}") == 2
    assert "floor_not_below" in tables.to_csv(table)


def test_a_floor_of_another_backbone_marks_nothing(tmp_path: Path) -> None:
    table = tables.build(store.load_records(floor_records(tmp_path, floor_arch="vit_tiny_patch16")))
    assert not any(table.floor_wins(r, c) for r in table.rows for c in table.columns)


def test_main_table_shows_main_metrics_and_task_tables_every_metric(records: Path) -> None:
    store.write_record(records / "extra.json", rec("mocov2", 2, "knn", {"knn_top1": 41.0, "knn_top5": 90.0}))
    tabs = leaderboard.build_tables(store.load_records(records))
    main = {(c.task, c.metric) for c in tabs["LEADERBOARD"].columns}
    assert ("knn", "knn_top1") in main and ("knn", "knn_top5") not in main
    assert ("bg_shift", "acc_mixed_same") not in main and ("bg_shift", "bg_gap") in main
    every = {(c.task, c.metric) for c in tabs["tasks/knn"].columns}
    assert {("knn", "knn_top1"), ("knn", "knn_top5")} <= every


def test_a_recipe_note_labels_its_row(records: Path) -> None:
    store.write_record(records / "byol.json", {**rec("byol", 0, "knn", {"knn_top1": 30.0}), "recipe": "paper-contracam",
                                               "recipe_note": "as in ContraCAM"})
    rows = tables.build(store.load_records(records)).rows
    assert ("byol", "paper-contracam (as in ContraCAM)", None, "synthetic", "2 ep") in rows


def test_tables_main_writes_claims_and_per_task_files(records: Path, tmp_path: Path) -> None:
    out = tmp_path / "tables"
    assert leaderboard.tables_main([records], None, None, out, check=False) == 0
    assert (out / "tasks" / "knn.md").is_file() and (out / "tasks" / "bg_shift.csv").is_file()
    claims_md = (out / "CLAIMS.md").read_text()
    assert "| verdict |" in claims_md and "no records" in claims_md  # these records hold no claimed rows
    assert leaderboard.tables_main([records], None, None, out, check=True) == 0


def test_latex_tables_compile(records: Path, tmp_path: Path) -> None:
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex is not installed (scripts/setup.sh installs Debian's texlive when run as root)")
    ref = pd.DataFrame([{"method": "MoCo v2", "pretrain_data": "COCO", "epochs": 800, "task": "coco_det",
                         "metric": "bbox_AP", "value": 38.9, "framework": "mmdet", "source": "paper X"}])
    bodies = [tables.to_latex(tables.build(store.load_records(records), ref))]
    committed = Path(__file__).resolve().parents[2] / "results"
    bodies += [p.read_text() for p in sorted(committed.glob("*.tex"))]
    doc = tmp_path / "tables.tex"
    preamble = ("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
                "\\usepackage[landscape,a3paper]{geometry}\n\\begin{document}\n")
    body = "\n\\bigskip\n".join(f"\\resizebox{{\\linewidth}}{{!}}{{{b}}}" for b in bodies)
    doc.write_text(preamble + body + "\n\\end{document}\n")
    res = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", doc.name],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:]
    assert (tmp_path / "tables.pdf").stat().st_size > 1000


def _verdicts() -> pd.DataFrame:
    base = {"source": "paper X", "statement": "A beats B", "where": "", "treatment": "contracam / tiny",
            "baseline": "mocov2 / tiny", "task": "knn", "metric": "knn_top1", "direction": "higher", "test": "t",
            "n_treatment": 2, "n_baseline": 2, "detail": ""}
    return pd.DataFrame([{**base, "claim": "a", "preset": "tiny", "verdict": "holds", "effect": 9.0, "ci_low": 2.0,
                          "ci_high": 16.0, "p_value": 0.01},
                         {**base, "claim": "b", "preset": "tiny", "verdict": "not significant", "effect": -1.0,
                          "ci_low": -5.0, "ci_high": 3.0, "p_value": 0.6},
                         {**base, "claim": "c", "preset": "tiny", "verdict": "no records", "effect": None,
                          "ci_low": None, "ci_high": None, "p_value": None, "detail": "no records of x"}])


def chromium(tmp_path: Path) -> list[str]:
    """Headless Chromium's command line, offline; skips the test where it is not installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh installs it when run as root)")
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'p'}",
            "--virtual-time-budget=20000"]


def assert_self_contained(page: Path) -> None:
    markup = re.sub(r"(<script>).*?(</script>)", r"\1\2", page.read_text(), flags=re.S)  # the tags, not the code
    assert "<script>" in markup and not re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)=", markup)


def probed(flags: list[str], page: Path, probe: str) -> dict:
    """The JSON that ``probe`` (a script) writes into the title of ``page`` once Chromium has drawn it."""
    head, tail = page.read_text().rsplit("</body>", 1)  # the chart bundle holds the text "</body>" too
    page.write_text(head + probe + "</body>" + tail)
    res = subprocess.run(flags + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    return json.loads(html.unescape(res.stdout.split("<title>")[1].split("</title>")[0]))


def test_html_page_in_headless_browser(records: Path, tmp_path: Path) -> None:
    flags = chromium(tmp_path)
    df = store.load_records(records)
    t = tables.build(df)
    robust = tables.build(df, tasks=["bg_shift"], every_metric=True)
    curves = [tables_html.Curve(f"{m} / tiny", "stage.pretrain", s, ((10, 5.0 - s), (20, 4.0), (30, 3.5)))
              for m in ("mocov2", "contracam") for s in (0, 1)]
    empty = tables.build(df, tasks=["nothing"], title="an empty layout")
    page = tmp_path / "leaderboard.html"
    page.write_text(tables_html.page(t, layouts=[empty], robustness=[robust], verdicts=_verdicts(), curves=curves))
    probe = ("<script>window.onload=function(){setTimeout(function(){"
             "var t=document.getElementById('t-main');"
             "var q=function(s){return document.querySelectorAll(s).length;};"
             "var rows=t.tBodies[0].rows.length;"
             "var menu=document.querySelector('#chart-metrics select');"
             "var metrics=Array.prototype.map.call(menu.options,function(o){return o.textContent;});"
             "var bars=q('#chart-metrics .mark-rect.layer_0_marks path');"
             "var empty=Array.prototype.filter.call(document.querySelectorAll('section'),"
             "function(s){return s.textContent.trim().length<20;}).length;"
             "var ids=Array.prototype.map.call(document.querySelectorAll('section'),function(s){return s.id;});"
             "var wide=getComputedStyle(t.parentNode).overflowX;"
             "t.tHead.rows[0].cells[0].click();var first=t.tBodies[0].rows[0].cells[0].textContent;"
             "var pick=function(word){menu.selectedIndex=metrics.findIndex(function(m){return m.indexOf(word)>=0;});"
             "menu.dispatchEvent(new Event('change'));};"
             "pick('knn_top1');setTimeout(function(){"
             "var whiskers=q('#chart-metrics .mark-rule.role-mark > *');pick('lower is better');"
             "setTimeout(function(){document.title=JSON.stringify({rows:rows,metrics:metrics,bars:bars,"
             "lowerBars:q('#chart-metrics .mark-rect.layer_0_marks path'),whiskers:whiskers,"
             "pts:q('#chart-robustness .mark-symbol.role-mark path'),effects:q('#chart-claims .mark-symbol.role-mark path'),"
             "spans:q('#chart-claims .mark-rule.role-mark > *'),curves:q('#chart-loss0 .mark-line path'),"
             "svgs:q('div.chart svg'),failed:Array.prototype.filter.call(document.querySelectorAll('div.chart'),"
             "function(d){return d.textContent.indexOf('chart failed')==0;}).length,"
             "requests:performance.getEntriesByType('resource').length,"
             "empty:empty,ids:ids,wide:wide,first:first});},500);},500);},500);};</script>")
    assert_self_contained(page)
    info = probed(flags, page, probe)
    assert info["rows"] == len(t.rows) == 2, info
    # one chart, its menu: knn (2 rows) and the bg_shift main metrics; coco_det (one row with a value) is left out
    assert len(info["metrics"]) == 4 and not any("coco_det" in m for m in info["metrics"])
    assert info["bars"] == 2 and info["lowerBars"] == 2 and info["whiskers"] >= 2  # bg_gap: lower is better
    assert info["pts"] == 4 and info["effects"] == 2 and info["spans"] >= 2 and info["curves"] == 4
    assert info["svgs"] == 4 and not info["failed"] and info["requests"] == 0  # drawn offline, nothing fetched
    assert info["empty"] == 0 and len(info["ids"]) == len(set(info["ids"])) and "layout0" not in info["ids"]
    assert info["wide"] == "auto" and info["first"] == "contracam"  # sorted ascending by method after the click
    shot = tmp_path / "page.png"
    subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1400,2400", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000


def stage_records(records: Path) -> None:
    """Pretraining stage records with loss curves, two seeds of each method."""
    for method in ("mocov2", "contracam"):
        for seed in (0, 1):
            r = {**rec(method, seed, "stage.pretrain", {"loss": 3.5, "steps": 30.0}), "kind": "stage", "role": "stage",
                 "extra": {"loss_curve": [[10, 5.0 - seed], [20, 4.0], [30, 3.5]]}}
            store.write_record(records / f"{method}-stage{seed}.json", r)


def test_run_pages_list_each_rows_records_and_are_linked(records: Path, tmp_path: Path) -> None:
    store.write_record(records / "cpu.json", {**rec("mocov2", 2, "knn", {"knn_top1": 41.0}),
                                              "versions": {"cpu": "AMD EPYC 7B13"}})
    stage_records(records)
    out = tmp_path / "out"
    assert leaderboard.tables_main([records], None, None, out, check=False) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["contracam-tiny.html", "mocov2-tiny.html"]
    main = (out / "leaderboard.html").read_text()
    for table_id in ("t-summary", "t-main"):
        part = main.split(f"id='{table_id}'")[1].split("</table>")[0]
        assert "<a href='runs/mocov2-tiny.html'>mocov2:tiny</a>" in part and "href='runs/contracam-tiny.html'" in part
    page = (out / "runs" / "mocov2-tiny.html").read_text()
    rows = re.findall(r"<tr>(.*?)</tr>", page.split("id='t-records'")[1].split("</table>")[0])[1:]
    assert len(rows) == 6  # knn_top1, bg_shift's three metrics and bg_gap, coco_det's bbox_AP
    knn = next(r for r in rows if "knn_top1" in r)
    assert all(f">{v}</td>" in knn for v in (40, 44, 41)) and "41.67 ± 2.08 [" in knn
    hrefs = re.findall(r"href='([^']+\.json)'", knn)
    assert [(out / "runs" / h).resolve() for h in hrefs] == [(records / f).resolve()
                                                              for f in ("r0.json", "r1.json", "cpu.json")]
    assert "<th>seeds</th><td class='key'>0, 1, 2</td>" in page and "AMD EPYC 7B13" in page
    assert "id='chart-loss0'" in page and "href='../leaderboard.html'" in page
    assert "AMD EPYC" not in (out / "runs" / "contracam-tiny.html").read_text()
    assert leaderboard.tables_main([records], None, None, out, check=True) == 0


def test_run_page_in_headless_browser(records: Path, tmp_path: Path) -> None:
    flags = chromium(tmp_path)
    stage_records(records)
    out = tmp_path / "out"
    assert leaderboard.tables_main([records], None, None, out, check=False) == 0
    page = out / "runs" / "mocov2-tiny.html"
    assert_self_contained(page)
    probe = ("<script>window.onload=function(){setTimeout(function(){"
             "var q=function(s){return document.querySelectorAll(s).length;};"
             "document.title=JSON.stringify({svgs:q('div.chart svg'),curves:q('#chart-loss0 .mark-line path'),"
             "records:document.getElementById('t-records').tBodies[0].rows.length,"
             "failed:Array.prototype.filter.call(document.querySelectorAll('div.chart'),"
             "function(d){return d.textContent.indexOf('chart failed')==0;}).length,"
             "requests:performance.getEntriesByType('resource').length});},500);};</script>")
    info = probed(flags, page, probe)
    assert info == {"svgs": 1, "curves": 2, "records": 6, "failed": 0, "requests": 0}, info


def test_recipe_links_start_from_the_output_folder(records: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "elsewhere" / "tables"
    assert leaderboard.tables_main([records], None, None, out, check=False) == 0
    recipes = {(ROOT / "methods" / m / "recipes" / "tiny.yaml").resolve() for m in ("mocov2", "contracam")}
    for page in (out / "leaderboard.html", out / "runs" / "mocov2-tiny.html"):
        hrefs = set(re.findall(r"href='([^']+/recipes/tiny\.yaml)'", page.read_text()))
        assert not any(h.startswith(("/", "file:")) for h in hrefs)
        assert {(page.parent / h).resolve() for h in hrefs} == (recipes if page.name == "leaderboard.html"
                                                                 else {(ROOT / "methods/mocov2/recipes/tiny.yaml")
                                                                       .resolve()})
    row = ("mocov2", "tiny", None, "synthetic", "2 ep")
    assert tables_html.row_links(row, ROOT / "results")["recipe"] == "../methods/mocov2/recipes/tiny.yaml"

    def no_relative_path(*args: str) -> str:
        raise ValueError("path is on mount 'D:', start on mount 'C:'")

    monkeypatch.setattr(tables_html.os.path, "relpath", no_relative_path)
    assert tables_html.relative_href(ROOT / "README.md", tmp_path) == (ROOT / "README.md").resolve().as_uri()


def test_chart_whiskers_respect_the_metric_bounds(tmp_path: Path) -> None:
    for method, values in (("mocov2", [99.0, 100.0, 95.0]), ("contracam", [50.0, 52.0, 51.0])):
        for seed, v in enumerate(values):
            store.write_record(tmp_path / "r" / f"{method}{seed}.json", rec(method, seed, "knn", {"knn_top1": v}))
    spec = charts.metric_bars(tables.build(store.load_records(tmp_path / "r")))
    points = {p["row"]: p for data in spec["datasets"].values() for p in data}
    assert points["mocov2 / tiny"]["high"] == 100.0 and points["mocov2 / tiny"]["low"] < 98.0


def test_the_summary_marks_a_best_rank_only_where_the_table_ranks(tmp_path: Path) -> None:
    def bold(values: dict[str, list[float]], folder: str) -> list[str]:
        for method, vals in values.items():
            for seed, v in enumerate(vals):
                r = rec(method, seed, "knn", {"knn_top1": v})
                store.write_record(tmp_path / folder / f"{method}{seed}.json", r)
        summary = tables_html.summary_html(tables.build(store.load_records(tmp_path / folder)), tmp_path)
        return [re.sub(r"<[^>]+>", "", r.split("</td>")[0]) for r in summary.split("<tr>")[2:] if "class='best'" in r]

    assert bold({"mocov2": [60.0, 61.0, 62.0]}, "one-row") == []
    assert bold({"mocov2": [60.0], "byol": [50.0]}, "one-seed") == []  # one seed each, no per-item values
    assert bold({"mocov2": [60.0, 61.0, 62.0], "byol": [50.0, 51.0, 50.5]}, "ranked") == ["mocov2"]


def test_tables_without_out_prints_a_summary(records: Path, capsys: pytest.CaptureFixture) -> None:
    assert leaderboard.tables_main([records], None, None, None, check=False) == 0
    text = capsys.readouterr().out
    assert "rows x" in text and "mocov2:tiny" in text and "--out DIR" in text
    assert "## " not in text  # no Markdown table dump


def test_average_ranks_share_ties_and_follow_the_direction() -> None:
    assert tables.average_ranks({"a": 3.0, "b": 1.0, "c": 3.0, "d": 2.0}, True) == {"a": 1.5, "c": 1.5, "d": 3, "b": 4}
    assert tables.average_ranks({"a": 3.0, "b": 1.0}, False) == {"b": 1, "a": 2}


def test_summary_view_ranks_rows_per_task_family(tmp_path: Path) -> None:
    for seed in range(2):
        for method, knn, probe in (("mocov2", 60.0, 70.0), ("byol", 65.0, 50.0)):
            store.write_record(tmp_path / "r" / f"{method}{seed}k.json", rec(method, seed, "knn", {"knn_top1": knn}))
            r = rec(method, seed, "linear_probe.cub", {"top1": probe})
            r["task_type"] = "linear_probe"
            store.write_record(tmp_path / "r" / f"{method}{seed}p.json", r)
    table = tables.build(store.load_records(tmp_path / "r"))
    families, cells = tables.family_summary(table)
    assert families == ["knn", "linear_probe"]
    byol, mocov2 = sorted(table.rows)
    assert cells[byol]["knn"] == (1.0, 65.0) and cells[mocov2]["linear_probe"] == (1.0, 70.0)
    assert "id='t-summary'" in tables_html.page(table)


def test_schedule_names_the_epochs_and_the_steps_the_backbone_trained(tmp_path: Path) -> None:
    task = {**rec("mocov2", 0, "knn", {"knn_top1": 40.0}), "epochs": 30, "upstream_keys": ["s1"]}
    stage = {**task, "kind": "stage", "task": "stage.pretrain", "unit_key": "s1", "upstream_keys": [],
             "metrics": {"loss": 1.0, "steps": 450.0, "epochs": 30.0}}
    tasks, stages = pd.DataFrame([task]), pd.DataFrame([stage])
    row = tables.row_of(tables.attach_pretrain_steps(tasks, stages).iloc[0].to_dict())
    assert row[tables.ROW_KEYS.index("schedule")] == "30 ep, 450 steps"
    other = tables.attach_pretrain_steps(tasks, pd.DataFrame([{**stage, "unit_key": "s2"}])).iloc[0].to_dict()
    assert tables.row_of(other)[-1] == "30 ep"  # its stage record is not among the records read
    assert tables.schedule_text({"epochs": None}) == "-" and tables.schedule_text({"epochs": 2.5}) == "2.5 ep"
