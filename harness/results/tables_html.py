"""One static HTML leaderboard that works offline: the summary by task family, the main
table (sortable, scrolls when wide), a bar chart of every main metric (chosen in a menu)
with 95 % CI whiskers, a clean-vs-shifted robustness plot, the claims with their effects
and intervals, pretraining loss curves, the per-paper layouts, the pipeline checks and the
published numbers. Charts are Vega-Lite (:mod:`harness.results.charts`). A chart is drawn
only when it compares at least two rows; a section without content is left out. Links to
files are relative to the folder the page is written to."""
from __future__ import annotations

import functools
import html
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.results import charts
from harness.results.tables import ROW_KEYS, Table

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
nav a{margin-right:1em}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f2f2f2;cursor:pointer;user-select:none}
td.key{text-align:left}
td.best{font-weight:bold;background:#e8f5e9}td.floor{color:#9e9e9e}

.charts{display:flex;flex-wrap:wrap;gap:18px}
.chart{border:1px solid #ddd;padding:6px;min-width:300px;min-height:120px}
"""

_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('thead th').forEach(function(th, idx){
    th.addEventListener('click', function(){
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var asc = th.dataset.dir !== 'asc';
      th.dataset.dir = asc ? 'asc' : 'desc';
      rows.sort(function(a, b){
        var x = a.cells[idx].dataset.v || a.cells[idx].textContent;
        var y = b.cells[idx].dataset.v || b.cells[idx].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""

@dataclass(frozen=True)
class Curve:
    """One pretraining loss curve: ``points`` are (step, loss)."""

    row: str
    stage: str
    seed: int
    points: tuple[tuple[float, float], ...]


def _esc(x: Any) -> str:
    return html.escape("" if x is None else str(x))


# -- tables ------------------------------------------------------------------------

def key_head(runs: Mapping[tuple, str]) -> str:
    """The header cells of a row's keys, with a ``run`` column when rows have run pages."""
    return "".join(f"<th>{_esc(k)}</th>" for k in ROW_KEYS) + ("<th>run</th>" if runs else "")


def key_cells(row: tuple, folder: Path, runs: Mapping[tuple, str]) -> str:
    """A row's key cells: the method linked to its paper, the recipe to its file (relative
    to ``folder``) and, when ``runs`` names one, a link to the row's run page."""
    links = row_links(row, folder)
    tds = "".join(f"<td class='key'>{link(v, links.get(k))}</td>" for k, v in zip(ROW_KEYS, row))
    if runs:
        tds += f"<td class='key'>{link(f'{row[0]}:{recipe_label(row)}', runs.get(row))}</td>"
    return tds


def table_html(table: Table, table_id: str, folder: Path, runs: Mapping[tuple, str] | None = None) -> str:
    """A table as sortable HTML; ``folder``: where its page is written; ``runs``: row -> run page."""
    runs = runs or {}
    head = key_head(runs)
    head += "".join(f"<th title='{_esc(c.group)}'>{_esc(c.group)}<br>{_esc(c.header)}</th>" for c in table.columns)
    body = []
    for row in table.rows:
        tds = key_cells(row, folder, runs)
        for col in table.columns:
            cell = table.cells.get((row, col))
            if cell is None:
                tds += "<td></td>"
                continue
            classes = " ".join(c for c, on in (("best", row in table.marked(col)),
                                                ("floor", table.floor_wins(row, col))) if on)
            cls = f" class='{classes}'" if classes else ""
            value = "" if cell.mean is None else f"{cell.mean:.6g}"
            tds += f"<td{cls} data-v='{value}'>{_esc(table.cell_text(row, col))}</td>"
        body.append(f"<tr>{tds}</tr>")
    notes = "".join(f"<p><em>{_esc(n)}</em></p>" for n in table.notes)
    return (f"<div class='scroll'><table class='sortable' id='{table_id}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>{notes}")


def reference_html(reference: pd.DataFrame) -> str:
    """The published numbers as their own table: task, metric, method, pretraining, value, source."""
    keys = ["task", "metric", "method", "pretrain_data", "epochs", "value", "framework", "setting", "source"]
    head = "".join(f"<th>{_esc(k)}</th>" for k in keys)
    rows = "".join("<tr>" + "".join(f"<td>{_esc(r.get(k, ''))}</td>" for k in keys) + "</tr>"
                   for r in reference.sort_values(["task", "metric", "method"], kind="stable").to_dict("records"))
    return (f"<div class='scroll'><table class='sortable' id='t-published'><thead><tr>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table></div>")


def summary_best(table: Table, families: list[str], cells: dict[tuple, dict[str, tuple[float, float]]]
                 ) -> dict[str, set[tuple]]:
    """Per family, the rows in bold: those with the family's best mean rank that
    :meth:`Table.marked` marks in at least one of the family's columns (so nothing is bold
    where the full table ranks nothing: one row, untestable rows, a table of checks)."""
    marked: dict[str, set[tuple]] = {f: set() for f in families}
    for col in table.columns:
        marked[col.task.split(".")[0]] |= table.marked(col)
    out = {}
    for f in families:
        best = min((v[f][0] for v in cells.values() if f in v), default=None)
        out[f] = {row for row in marked[f] if f in cells.get(row, {}) and cells[row][f][0] == best}
    return out


def summary_html(table: Table, folder: Path, runs: Mapping[tuple, str] | None = None) -> str:
    """Rows x task families: the mean rank over the family's columns (1 = best) and the mean
    score, the best rank of each family in bold (:func:`summary_best`); rows in the table's
    order, keyed and linked like the full table."""
    from harness.results.tables import family_summary

    runs = runs or {}
    families, cells = family_summary(table)
    head = key_head(runs) + "".join(f"<th>{_esc(f)}<br>rank (score)</th>" for f in families)
    best = summary_best(table, families, cells)
    body = []
    for row in table.rows:
        tds = key_cells(row, folder, runs)
        for f in families:
            if f not in cells.get(row, {}):
                tds += "<td></td>"
                continue
            rank, score = cells[row][f]
            cls = " class='best'" if row in best[f] else ""
            tds += f"<td{cls} data-v='{rank:.6g}'>{rank:.1f} ({score:.1f})</td>"
        body.append(f"<tr>{tds}</tr>")
    return (f"<div class='scroll'><table class='sortable' id='t-summary'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div><p><em>Mean rank of the row over the family's main "
            "metrics (1 = best mean) and its mean score; the full table follows.</em></p>")


def relative_href(target: Path, folder: Path) -> str:
    """A link from a page in ``folder`` to the file ``target``: its relative path, or its
    absolute file URI where no relative path leads there (another drive)."""
    try:
        return Path(os.path.relpath(Path(target).resolve(), Path(folder).resolve())).as_posix()
    except ValueError:
        return Path(target).resolve().as_uri()


def row_links(row: tuple, folder: Path) -> dict[str, str]:
    """Where a row's method and recipe are described: the method's paper and the recipe
    file (linked from ``folder``, when the recipe is a file)."""
    return dict(_links(str(row[0]), recipe_label(row), str(folder)))


def recipe_label(row: tuple) -> str:
    """A row's recipe label, without the recipe's note."""
    return str(row[1]).split(" (")[0]


@functools.lru_cache(maxsize=None)
def _links(method: str, recipe: str, folder: str) -> tuple[tuple[str, str], ...]:
    """Looked up once per (method, recipe, folder): the page lists each row in many tables."""
    from harness.core import registry

    if method not in registry.methods():
        return ()
    out = {}
    paper = getattr(registry.import_entry(registry.method_entry(method).entry), "paper", None)
    if paper:
        out["method"] = paper
    recipes = registry.recipe_dir(registry.method_entry(method))
    if recipes is not None and (recipes / f"{recipe}.yaml").is_file():
        out["recipe"] = relative_href(recipes / f"{recipe}.yaml", Path(folder))
    return tuple(out.items())


def link(text: Any, href: str | None) -> str:
    """``text`` as a link to ``href`` (escaped), or plain when there is no ``href``."""
    return f"<a href='{_esc(href)}'>{_esc(text)}</a>" if href else _esc(text)


def has_content(table: Table | None) -> bool:
    return table is not None and bool(table.rows) and bool(table.columns)


def _value_text(x: Any) -> str:
    if isinstance(x, float):
        return "" if math.isnan(x) else f"{x:.4g}"
    return "" if x is None else str(x)


def claims_table(verdicts: pd.DataFrame) -> str:
    cols = ["claim", "preset", "treatment", "baseline", "task", "metric", "direction", "effect", "ci_low",
            "ci_high", "p_value", "verdict"]
    head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
    rows = []
    for v in verdicts.to_dict("records"):
        tds = [f"<td class='key' title='{_esc(v.get('statement'))}'>{_esc(v['claim'])}</td>"]
        tds += [f"<td>{_esc(_value_text(v.get(c)))}</td>" for c in cols[1:]]
        rows.append(f"<tr>{''.join(tds)}</tr>")
    return (f"<div class='scroll'><table class='sortable' id='claims-table'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def curve_row(method: str, recipe: str) -> str:
    """The label of a run's loss curves."""
    return f"{method} / {recipe}"


def curves_from_records(stages: pd.DataFrame) -> list[Curve]:
    """The loss curves that stage records carry (``extra.loss_curve``)."""
    out = []
    for rec in stages.to_dict("records") if len(stages) else []:
        points = ((rec.get("extra") or {}) if isinstance(rec.get("extra"), dict) else {}).get("loss_curve") or []
        if rec.get("status") == "ok" and points:
            out.append(Curve(curve_row(rec["method"], rec["recipe"]), str(rec["task"]), int(rec.get("seed", 0)),
                             tuple((float(s), float(v)) for s, v in points)))
    return out


# -- the page ----------------------------------------------------------------------

def document(title: str, sections: list[tuple[str, str, str]], specs: Mapping[str, dict[str, Any]],
             intro: str = "") -> str:
    """A whole offline page: ``sections`` ((id, heading, html), each with a menu entry) after
    ``intro``, the sorting script and the scripts that draw ``specs``."""
    nav = "".join(f"<a href='#{sid}'>{_esc(h)}</a>" for sid, h, _ in sections)
    body = "".join(f"<section id='{sid}'><h2>{_esc(h)}</h2>{content}</section>" for sid, h, content in sections)
    if not sections:
        body = "<p>No records.</p>"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{_esc(title)}</h1>{intro}<nav>{nav}</nav>{body}"
            f"<script>{_SCRIPT}</script>{charts.embed_script(specs)}</body></html>\n")


def page(main: Table, *, layouts: list[Table] = (), plumbing: Table | None = None,
         robustness: list[Table] = (), verdicts: pd.DataFrame | None = None, curves: list[Curve] = (),
         reference: pd.DataFrame | None = None, title: str = "Leaderboard", folder: Path | None = None,
         runs: Mapping[tuple, str] | None = None) -> str:
    """The whole page; each section appears once, and only with content. ``folder``: where
    the page is written (default: the results folder); ``runs``: main row -> its run page."""
    from harness.core import paths

    folder = folder or paths.results_dir()
    sections: list[tuple[str, str, str]] = []  # (id, heading, html)
    specs: dict[str, dict[str, Any]] = {}  # chart div id -> Vega-Lite spec

    def drawn(spec: dict[str, Any] | None, chart_id: str) -> str:
        if spec is None:
            return ""
        specs[chart_id] = spec
        return charts.chart_div(chart_id)

    if has_content(main):
        sections.append(("summary", "Summary by task family", summary_html(main, folder, runs)))
        sections.append(("main", main.title, table_html(main, "t-main", folder, runs)))
        if bars := drawn(charts.metric_bars(main), "chart-metrics"):
            sections.append(("charts", "Each main metric, by row", f"<div class='charts'>{bars}</div>"))
    if scatter := drawn(charts.robustness(robustness), "chart-robustness"):
        sections.append(("robustness", "Robustness", f"<div class='charts'>{scatter}</div>"))
    if verdicts is not None and len(verdicts):
        sections.append(("claims", "Published claims, checked on these records",
                         drawn(charts.claims(verdicts), "chart-claims") + claims_table(verdicts)))
    if loss := "".join(drawn(spec, f"chart-loss{i}") for i, spec in enumerate(charts.loss_curves(curves))):
        sections.append(("loss", "Pretraining loss", f"<div class='charts'>{loss}</div>"))
    for i, t in enumerate(t for t in layouts if has_content(t)):
        sections.append((f"layout{i}", t.title, table_html(t, f"t-layout{i}", folder)))
    if has_content(plumbing):
        sections.append(("plumbing", plumbing.title, table_html(plumbing, "t-plumbing", folder)))
    if reference is not None and len(reference):
        sections.append(("published", "Published numbers at paper scale (not reproduced here; never compared "
                         "with the rows above)", reference_html(reference)))
    return document(title, sections, specs)
