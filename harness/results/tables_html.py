"""One static HTML leaderboard that works offline: the summary by task family, the main
table (sortable, scrolls when wide), a bar chart of every main metric (chosen in a menu)
with 95 % CI whiskers, a clean-vs-shifted robustness plot, the claims with their effects
and intervals, pretraining loss curves, the per-paper layouts, the pipeline checks and the
published numbers. Charts are Vega-Lite (:mod:`harness.results.charts`). A chart is drawn
only when it compares at least two rows; a section without content is left out."""
from __future__ import annotations

import functools
import html
import math
from dataclasses import dataclass
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

def table_html(table: Table, table_id: str) -> str:
    head = "".join(f"<th>{_esc(k)}</th>" for k in ROW_KEYS)
    head += "".join(f"<th title='{_esc(c.group)}'>{_esc(c.group)}<br>{_esc(c.header)}</th>" for c in table.columns)
    body = []
    for row in table.rows:
        links = row_links(row)
        tds = "".join(f"<td class='key'>{_link(v, links.get(k))}</td>" for k, v in zip(ROW_KEYS, row))
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


def summary_html(table: Table) -> str:
    """Rows x task families: the mean rank over the family's columns (1 = best) and the mean
    score, the best rank of each family in bold; rows in the table's order."""
    from harness.results.tables import family_summary

    families, cells = family_summary(table)
    head = "".join(f"<th>{_esc(k)}</th>" for k in ROW_KEYS) + "".join(f"<th>{_esc(f)}<br>rank (score)</th>"
                                                                       for f in families)
    best = {f: min((v[f][0] for v in cells.values() if f in v), default=None) for f in families}
    body = []
    for row in table.rows:
        tds = "".join(f"<td class='key'>{_esc(v)}</td>" for v in row)
        for f in families:
            if f not in cells.get(row, {}):
                tds += "<td></td>"
                continue
            rank, score = cells[row][f]
            cls = " class='best'" if rank == best[f] else ""
            tds += f"<td{cls} data-v='{rank:.6g}'>{rank:.1f} ({score:.1f})</td>"
        body.append(f"<tr>{tds}</tr>")
    return (f"<div class='scroll'><table class='sortable' id='t-summary'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div><p><em>Mean rank of the row over the family's main "
            "metrics (1 = best mean) and its mean score; the full table follows.</em></p>")


def row_links(row: tuple) -> dict[str, str]:
    """Where a row's method and recipe are described: the method's paper and the recipe
    file (relative to the results folder, when the recipe lives in this source tree)."""
    return dict(_links(str(row[0]), str(row[1]).split(" (")[0]))


@functools.lru_cache(maxsize=None)
def _links(method: str, recipe: str) -> tuple[tuple[str, str], ...]:
    """Looked up once per (method, recipe): the page lists each row in many tables."""
    from harness.core import paths, registry

    if method not in registry.methods():
        return ()
    out = {}
    paper = getattr(registry.import_entry(registry.method_entry(method).entry), "paper", None)
    if paper:
        out["method"] = paper
    folder = registry.recipe_dir(registry.method_entry(method))
    if folder is not None and (folder / f"{recipe}.yaml").is_file():
        try:
            out["recipe"] = "../" + (folder / f"{recipe}.yaml").resolve().relative_to(
                paths.results_dir().resolve().parent).as_posix()
        except ValueError:
            pass
    return tuple(out.items())


def _link(text: Any, href: str | None) -> str:
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


def curves_from_records(stages: pd.DataFrame) -> list[Curve]:
    """The loss curves that stage records carry (``extra.loss_curve``)."""
    out = []
    for rec in stages.to_dict("records") if len(stages) else []:
        points = ((rec.get("extra") or {}) if isinstance(rec.get("extra"), dict) else {}).get("loss_curve") or []
        if rec.get("status") == "ok" and points:
            out.append(Curve(f"{rec['method']} / {rec['recipe']}", str(rec["task"]), int(rec.get("seed", 0)),
                             tuple((float(s), float(v)) for s, v in points)))
    return out


# -- the page ----------------------------------------------------------------------

def page(main: Table, *, layouts: list[Table] = (), plumbing: Table | None = None,
         robustness: list[Table] = (), verdicts: pd.DataFrame | None = None, curves: list[Curve] = (),
         reference: pd.DataFrame | None = None, title: str = "Leaderboard") -> str:
    """The whole page; each section appears once, and only with content."""
    sections: list[tuple[str, str, str]] = []  # (id, heading, html)
    specs: dict[str, dict[str, Any]] = {}  # chart div id -> Vega-Lite spec

    def drawn(spec: dict[str, Any] | None, chart_id: str) -> str:
        if spec is None:
            return ""
        specs[chart_id] = spec
        return charts.chart_div(chart_id)

    if has_content(main):
        sections.append(("summary", "Summary by task family", summary_html(main)))
        sections.append(("main", main.title, table_html(main, "t-main")))
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
        sections.append((f"layout{i}", t.title, table_html(t, f"t-layout{i}")))
    if has_content(plumbing):
        sections.append(("plumbing", plumbing.title, table_html(plumbing, "t-plumbing")))
    if reference is not None and len(reference):
        sections.append(("published", "Published numbers at paper scale (not reproduced here; never compared "
                         "with the rows above)", reference_html(reference)))
    nav = "".join(f"<a href='#{sid}'>{_esc(h)}</a>" for sid, h, _ in sections)
    body = "".join(f"<section id='{sid}'><h2>{_esc(h)}</h2>{content}</section>" for sid, h, content in sections)
    if not sections:
        body = "<p>No records.</p>"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{_esc(title)}</h1><nav>{nav}</nav>{body}"
            f"<script>{_SCRIPT}</script>{charts.embed_script(specs)}</body></html>\n")
