"""Writes (or checks) the leaderboard files from the records: the whole-protocol
LEADERBOARD (main metrics), one file per suite, one per paper layout, one per task (every
metric), the claims' verdicts, in md / csv / tex, one HTML page and one HTML page per
row of the main table (``runs/``)."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.core import config as config_mod
from harness.results import claims, compare, run_pages, store, tables, tables_html
from harness.core import paths
from harness.core.atomic import atomic_write_text
from harness.core.text_table import text_table
from harness.core.errors import ConfigError, DataError

FORMATS = ("md", "csv", "tex", "html")


def layouts() -> dict[str, dict]:
    """Per-paper table layouts: ``benchmarks/layouts/<name>.yaml`` (title, columns)."""
    out = {}
    for path in sorted((paths.benchmarks_dir() / "layouts").glob("*.yaml")):
        data = config_mod.read_yaml(path)
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
            raise ConfigError(f"{path}: a layout needs a 'columns' list of {{task, metric}}")
        out[path.stem] = data
    return out


def suite_tasks(name: str) -> list[str]:
    suite = config_mod.load_suite(name)
    return [t if isinstance(t, str) else t.get("as", t["task"]) for t in suite["tasks"]]


@dataclass
class Contents:
    """Everything the leaderboard files show: the tables by file stem, the claims'
    verdicts, the loss curves, the published numbers and the task records (for the run pages)."""

    tables: dict[str, tables.Table]
    verdicts: pd.DataFrame | None = None
    curves: list[tables_html.Curve] = field(default_factory=list)
    reference: pd.DataFrame | None = None  # published paper-scale numbers, shown apart
    records: pd.DataFrame | None = None


def build_tables(records: pd.DataFrame, suite: str | None = None) -> dict[str, tables.Table]:
    """{file stem: table}: LEADERBOARD (each task's main metrics), plumbing, suite-<name>,
    paper-<layout> and tasks/<task> (every metric of one task instance). The comparison
    tables share one cache of best-marks and floor marks: a column shown in several runs its
    tests once."""
    marks: dict = {}
    floors: dict = {}
    if suite is not None:
        return {f"suite-{suite}": tables.build(records, tasks=suite_tasks(suite), title=f"Suite {suite}")}
    out = {"LEADERBOARD": tables.build(records, title="Leaderboard: the main metrics of every task",
                                       marks=marks, floor_marks=floors)}
    plumbing = tables.build(records, title="Pipeline checks (role: plumbing; numbers check a pipeline at this "
                            "scale and rank nothing)", role="plumbing")
    if plumbing.rows:
        out["plumbing"] = plumbing
    present = set(records["task"]) if len(records) else set()
    for name in config_mod.suite_names():
        names = suite_tasks(name)
        if present & set(names):
            out[f"suite-{name}"] = tables.build(records, tasks=names, title=f"Suite {name}", marks=marks,
                                                floor_marks=floors)
    for name, lay in layouts().items():
        out[f"paper-{name}"] = tables.build(records, title=lay.get("title", name),
                                            columns=lay["columns"],
                                            tasks=sorted({c["task"] for c in lay["columns"]}), marks=marks,
                                            floor_marks=floors)
    comparable = compare.comparable(records)
    for task in sorted(set(comparable["task"]) if len(comparable) else set()):
        out[f"tasks/{task}"] = tables.build(records, tasks=[task], every_metric=True,
                                            title=f"{task}: every metric", marks=marks, floor_marks=floors)
    return out


def build_contents(records: list[Path], suite: str | None = None, duplicates: str = "refuse") -> Contents:
    """Load the records (task and stage) and the published numbers; build every table and,
    for the whole leaderboard, the claims' verdicts, the loss curves and the records of the
    run pages. ``duplicates``:
    see :func:`harness.results.store.load_records`."""
    recs = store.load_records(records, kind="task", duplicates=duplicates)
    if not len(recs):
        raise DataError(f"no task records in {', '.join(map(str, records))}; no table written")
    stages = store.load_records(records, kind="stage", duplicates=duplicates)
    recs = tables.attach_pretrain_steps(recs, stages)
    reference = tables.load_reference()
    tabs = build_tables(recs, suite)
    if suite is not None:
        return Contents(tabs)
    loaded = claims.load_claims()
    verdicts = claims.verdict_table(claims.evaluate(loaded, recs)) if loaded else None
    curves = tables_html.curves_from_records(stages)
    return Contents(tabs, verdicts, curves, reference, recs)


def reference_markdown(reference: pd.DataFrame) -> str:
    """Every published number, grouped by task, with its setting and source."""
    lines = ["## Published reference numbers (not reproduced by this harness)", "",
             "| task | metric | method | pretraining | epochs | value | framework | setting | source |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in reference.sort_values(["task", "metric", "method"], kind="stable").to_dict("records"):
        cells = [r["task"], r["metric"], r["method"], r["pretrain_data"], r["epochs"], f"{r['value']:g}",
                 r["framework"], r.get("setting", ""), r["source"]]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def render(contents: Contents, formats: tuple[str, ...] = FORMATS, folder: Path | None = None) -> dict[str, str]:
    """{file name: text} for every table and format (per-task tables: md and csv), the
    claims (CLAIMS.md / .csv), the published numbers (REFERENCE.md) and, in HTML, the
    leaderboard page with its run pages; ``folder``: where the files go (default: the
    results folder), which their links start from."""
    files: dict[str, str] = {}
    if contents.reference is not None and len(contents.reference) and "md" in formats:
        files["REFERENCE.md"] = reference_markdown(contents.reference)
    for stem, t in contents.tables.items():
        per_task = stem.startswith("tasks/")
        if "md" in formats:
            files[f"{stem}.md"] = tables.to_markdown(t)
        if "csv" in formats:
            files[f"{stem}.csv"] = tables.to_csv(t)
        if "tex" in formats and not per_task:
            files[f"{stem}.tex"] = tables.to_latex(t)
    if contents.verdicts is not None:
        if "md" in formats:
            files["CLAIMS.md"] = claims.verdicts_markdown(contents.verdicts)
        if "csv" in formats:
            files["CLAIMS.csv"] = contents.verdicts.to_csv(index=False, float_format="%.4f", lineterminator="\n")
    if "html" in formats:
        folder = folder or paths.results_dir()
        tabs = contents.tables
        main = tabs.get("LEADERBOARD") or next(iter(tabs.values()))
        runs = run_pages.run_records(contents.records, main.rows) if contents.records is not None else {}
        names = run_pages.page_names(runs)
        files["leaderboard.html"] = tables_html.page(
            main, layouts=[t for k, t in tabs.items() if k.startswith("paper-")], plumbing=tabs.get("plumbing"),
            robustness=[tabs[f"tasks/{t}"] for t in (suite_tasks("robustness") if "robustness" in
                                                    config_mod.suite_names() else []) if f"tasks/{t}" in tabs],
            verdicts=contents.verdicts, curves=contents.curves, reference=contents.reference, folder=folder,
            runs=names)
        for row, name in names.items():
            files[name] = run_pages.page(row, runs[row], contents.curves, (folder / name).parent)
    return files


def summary_text(table: tables.Table) -> str:
    """Per computed row of a table: its cells, how many are marked best and how many an
    untrained floor is not worse than; then how to get the full tables."""
    rows = []
    for row in table.rows:
        cells = [c for c in table.columns if (cell := table.cells.get((row, c))) and cell.values]
        if cells:
            rows.append([f"{row[0]}:{row[1]}", row[2], row[3], row[4], len(cells),
                         sum(row in table.marked(c) for c in cells), sum(table.floor_wins(row, c) for c in cells)])
    head = f"{table.title}: {len(rows)} rows x {len(table.columns)} columns"
    body = text_table(["row", "backbone", "pretrain data", "schedule", "cells", "best",
                       f"floor not worse ({tables.FLOOR_MARK})"], rows, right=(3, 4, 5, 6))
    return (f"{head}\n{body}\n\nEvery table: `harness tables --out DIR` (Markdown, CSV, LaTeX, HTML); "
            "one suite's: `harness tables --suite NAME`.")


def default_records() -> list[Path]:
    return [paths.results_dir() / "records"]


def tables_main(records: list[Path] | None, suite: str | None, fmt: str | None, out: Path | None,
                check: bool, duplicates: str = "refuse") -> int:
    """The ``harness tables`` command. Without --out it prints a summary of the main table
    (with ``--suite``, that suite's Markdown table)."""
    contents = build_contents(records or default_records(), suite, duplicates)
    if out is None and not check and suite is None:
        print(summary_text(contents.tables["LEADERBOARD"]))
        return 0
    target = out or paths.results_dir()
    files = render(contents, (fmt,) if fmt else FORMATS, target)
    if check:
        stale = [name for name, text in files.items()
                 if not (target / name).is_file() or (target / name).read_text() != text]
        for name in stale:
            old = (target / name).read_text().splitlines() if (target / name).is_file() else []
            diff = list(difflib.unified_diff(old, files[name].splitlines(), f"{target / name} (committed)",
                                             f"{name} (from records)", lineterm="", n=1))
            print(f"stale: {target / name}" + ("" if old else " (missing)"))
            print("\n".join(line[:240] + (" ..." if len(line) > 240 else "") for line in diff[:20]))
        if stale:
            print(f"{len(stale)} table file(s) out of date; run `harness tables --out {target}`")
            return 1
        print(f"{len(files)} table files up to date in {target}")
        return 0
    if out is None:
        print(files[f"suite-{suite}.md"] if f"suite-{suite}.md" in files else "\n".join(files.values()))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / name, text)
    print(f"wrote {len(files)} files to {out}")
    return 0
