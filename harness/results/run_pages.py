"""One HTML page per row of the main table (a method:recipe run over its seeds): what the
run is, its pretraining loss curves and every record it holds, each with its file. Like the
leaderboard page, each works offline and requests nothing."""
from __future__ import annotations

import re
from collections.abc import Iterable
from html import escape
from pathlib import Path

import pandas as pd

from harness.results import charts, tables, tables_html
from harness.results.record_schema import TASK_ROLES
from harness.results.tables import ROW_KEYS

FOLDER = "runs"  # beside the leaderboard page

LEADERBOARD = "../leaderboard.html"


def run_records(records: pd.DataFrame, rows: Iterable[tuple]) -> dict[tuple, pd.DataFrame]:
    """Each row's task records (``records`` as :func:`harness.results.tables.build` reads them)."""
    keys = [tables.row_of(r) for r in records.to_dict("records")]
    return {row: records[[k == row for k in keys]] for row in rows}


def page_names(runs: dict[tuple, pd.DataFrame]) -> dict[tuple, str]:
    """Row -> its page, relative to the leaderboard's folder: ``runs/<method>-<recipe>.html``
    (with a number when two rows would share a name)."""
    out: dict[tuple, str] = {}
    taken: set[str] = set()
    for row, recs in runs.items():
        first = recs.iloc[0]
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{first['method']}-{first['recipe']}")
        name, n = stem, 1
        while name in taken:
            n += 1
            name = f"{stem}-{n}"
        taken.add(name)
        out[row] = f"{FOLDER}/{name}.html"
    return out


def identity_html(row: tuple, records: pd.DataFrame, folder: Path) -> str:
    """The run's keys (method and recipe linked as in the leaderboard), its seeds and the
    CPUs its records name."""
    links = tables_html.row_links(row, folder)
    items = [(k, tables_html.link(v, links.get(k))) for k, v in zip(ROW_KEYS, row)]
    items.append(("seeds", ", ".join(str(s) for s in sorted({int(s) for s in records["seed"]}))))
    versions = records["versions"] if "versions" in records else []
    cpus = sorted({str(v["cpu"]) for v in versions if isinstance(v, dict) and v.get("cpu")})
    if cpus:
        items.append(("CPU", escape(", ".join(cpus))))
    items.append(("records", str(len(records))))
    body = "".join(f"<tr><th>{escape(k)}</th><td class='key'>{v}</td></tr>" for k, v in items)
    return f"<table id='t-run'><tbody>{body}</tbody></table>"


def records_html(records: pd.DataFrame, folder: Path) -> str:
    """Every metric of the run's records: its value per seed, the mean with its 95 %
    interval (as in the leaderboard) and the record files, linked from ``folder``."""
    files = {(r["task"], str(r.get("task_version", "?")), tables.framework_label(r), int(r.get("seed", 0))): r["path"]
             for r in records.to_dict("records")}
    seeds = sorted({k[3] for k in files})
    head = ["task", "version", "framework", "metric", "role"] + [f"seed {s}" for s in seeds]
    head += ["mean ± std [95 % CI] n", "record files"]
    body = []
    for role in TASK_ROLES:
        table = tables.build(records, every_metric=True, role=role)
        for (_, col), cell in sorted(table.cells.items(), key=lambda item: table.columns.index(item[0][1])):
            hrefs = [tables_html.relative_href(Path(files[k]), folder) for s in seeds
                     if (k := (col.task, col.version, col.framework, s)) in files]
            body.append(_metric_row(col, cell, role, seeds, hrefs))
    head_html = "".join(f"<th>{escape(h)}</th>" for h in head)
    return (f"<div class='scroll'><table class='sortable' id='t-records'><thead><tr>{head_html}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _metric_row(col: tables.Column, cell: tables.Cell, role: str, seeds: list[int], hrefs: list[str]) -> str:
    values = dict(zip(cell.seeds, cell.values))
    tds = "".join(f"<td class='key'>{escape(v)}</td>" for v in (col.task, col.version, col.framework, col.header, role))
    tds += "".join(f"<td data-v='{values[s]:.6g}'>{values[s]:.4g}</td>" if s in values else "<td></td>"
                   for s in seeds)
    mean = "" if cell.mean is None else f"{cell.mean:.6g}"
    tds += f"<td data-v='{mean}'>{escape(cell.text(bounds=tables.metric_bounds(col)))}</td>"
    return f"<tr>{tds}<td class='key'>{'<br>'.join(tables_html.link(h, h) for h in hrefs)}</td></tr>"


def page(row: tuple, records: pd.DataFrame, curves: Iterable[tables_html.Curve], folder: Path) -> str:
    """The page of one run: ``records`` are its task records, ``curves`` every loss curve
    (its own are drawn), ``folder`` where the page is written."""
    method, recipe = str(records.iloc[0]["method"]), str(records.iloc[0]["recipe"])
    specs = {}
    sections = [("run", "Run", identity_html(row, records, folder))]
    mine = [c for c in curves if c.row == tables_html.curve_row(method, recipe)]
    for i, spec in enumerate(charts.loss_curves(mine)):
        specs[f"chart-loss{i}"] = spec
    if specs:
        divs = "".join(charts.chart_div(chart_id) for chart_id in specs)
        sections.append(("loss", "Pretraining loss", f"<div class='charts'>{divs}</div>"))
    sections.append(("records", "Records", records_html(records, folder)))
    intro = f"<p><a href='{LEADERBOARD}'>Leaderboard</a></p>"
    return tables_html.document(f"Run {method}:{recipe}", sections, specs, intro)
