"""One static HTML leaderboard, with no server and no external files: the main table
(sortable, scrolls when wide), one bar chart per column with 95 % CI error bars, a
clean-vs-shifted robustness plot, the claims with their effects and intervals, pretraining
loss curves, the per-paper layouts and the pipeline checks. A chart is drawn only when it
compares at least two rows; a section without content is left out."""
from __future__ import annotations

import functools

import html
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.results.tables import ROW_KEYS, Column, Table

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
.chart{border:1px solid #ddd;padding:6px}
.chart h4{margin:2px 0 6px 0;font-size:12px}
svg text{font-size:11px}
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

def palette(n: int) -> list[str]:
    """``n`` colours that all differ: hues spread evenly round the wheel, lightness alternating
    between neighbours so that adjacent hues stay apart."""
    return [f"hsl({round(360 * i / max(n, 1))}, 70%, {38 if i % 2 else 52}%)" for i in range(n)]
VERDICT_COLOURS = {"holds": "#2ca02c", "contradicted": "#d62728", "not significant": "#7f7f7f"}


@dataclass(frozen=True)
class Curve:
    """One pretraining loss curve: ``points`` are (step, loss)."""

    row: str
    stage: str
    seed: int
    points: tuple[tuple[float, float], ...]


def _esc(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi] (steps 1, 2, 2.5, 5 x 10^k)."""
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _fmt(v: float) -> str:
    return f"{v:g}" if abs(v) >= 1e-9 else "0"


class _Scale:
    """A linear map from the ticks' span onto pixels [p0, p1]."""

    def __init__(self, ticks: list[float], p0: float, p1: float) -> None:
        self.ticks, self.lo, self.hi, self.p0, self.p1 = ticks, ticks[0], ticks[-1], p0, p1

    def __call__(self, v: float) -> float:
        return self.p0 + (v - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)


def _axis(scale: _Scale, at: float, label: str, vertical: bool = False) -> str:
    """An axis line at ``at`` (y of a horizontal axis, x of a vertical one) with a tick and
    a number at every tick value, and its label."""
    def xy(along: float, across: float) -> tuple[float, float]:
        return (across, along) if vertical else (along, across)

    out = -1 if vertical else 1  # ticks point away from the plot
    (x1, y1), (x2, y2) = xy(scale.p0, at), xy(scale.p1, at)
    parts = [f"<line class='axis' x1='{x1:.1f}' y1='{y1:.1f}' x2='{x2:.1f}' y2='{y2:.1f}' stroke='#333'/>"]
    for t in scale.ticks:
        (tx1, ty1), (tx2, ty2) = xy(scale(t), at), xy(scale(t), at + 4 * out)
        (nx, ny) = xy(scale(t) + (4 if vertical else 0), at + (6 if vertical else 15) * out)
        anchor = "end" if vertical else "middle"
        parts.append(f"<line class='tick' x1='{tx1:.1f}' y1='{ty1:.1f}' x2='{tx2:.1f}' y2='{ty2:.1f}' stroke='#333'/>"
                     f"<text x='{nx:.1f}' y='{ny:.1f}' text-anchor='{anchor}'>{_fmt(t)}</text>")
    mid = (scale.p0 + scale.p1) / 2
    if vertical:
        parts.append(f"<text x='12' y='{mid:.1f}' transform='rotate(-90 12 {mid:.1f})' "
                     f"text-anchor='middle'>{_esc(label)}</text>")
    else:
        parts.append(f"<text x='{mid:.1f}' y='{at + 29}' text-anchor='middle'>{_esc(label)}</text>")
    return "".join(parts)


def _chart(title: str, width: float, height: float, body: str, cls: str = "") -> str:
    return (f"<div class='chart{' ' + cls if cls else ''}'><h4>{_esc(title)}</h4>"
            f"<svg width='{width:.0f}' height='{height:.0f}'>{body}</svg></div>")


def _label(row: tuple) -> str:
    return " / ".join(str(v) for v in row[:2])


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


# -- charts ------------------------------------------------------------------------

def bar_chart(table: Table, col: Column) -> str:
    """Horizontal bars of the computed rows' means with 95 % CI error bars; empty when
    fewer than two rows have a value."""
    points = []
    for row in table.rows:
        cell = table.cells.get((row, col))
        if cell is None or cell.mean is None:
            continue
        iv = cell.interval()
        low, high = (iv.low, iv.high) if iv is not None and iv.low is not None else (None, None)
        points.append((_label(row), cell.mean, low, high))
    if len(points) < 2:
        return ""
    values = [v for _, m, lo, hi in points for v in (m, lo, hi) if v is not None] + [0.0]
    label_w, width, bar_h, top = 170, 440, 16, 4
    sx = _Scale(nice_ticks(min(values), max(values)), label_w, width - 20)
    parts = []
    for i, (label, mean, low, high) in enumerate(points):
        y = top + i * (bar_h + 6)
        x0, x1 = sorted((sx(0.0), sx(mean)))
        parts.append(f"<text x='{label_w - 4}' y='{y + 12}' text-anchor='end'>{_esc(label)}</text>"
                     f"<rect class='bar' x='{x0:.1f}' y='{y}' width='{max(x1 - x0, 1):.1f}' height='{bar_h}' "
                     f"fill='#4a90d9'><title>{_esc(label)}: {mean:.2f}</title></rect>")
        if low is not None:
            yc = y + bar_h / 2
            parts.append(f"<g class='err'><line x1='{sx(low):.1f}' y1='{yc}' x2='{sx(high):.1f}' y2='{yc}' "
                         f"stroke='#222'/><line x1='{sx(low):.1f}' y1='{yc - 4}' x2='{sx(low):.1f}' y2='{yc + 4}' "
                         f"stroke='#222'/><line x1='{sx(high):.1f}' y1='{yc - 4}' x2='{sx(high):.1f}' "
                         f"y2='{yc + 4}' stroke='#222'/><title>95 % CI [{low:.2f}, {high:.2f}]</title></g>")
    axis_y = top + len(points) * (bar_h + 6)
    sense = "higher is better" if col.higher_is_better else "lower is better"
    body = "".join(parts) + _axis(sx, axis_y, f"{sense}; bar: mean, whiskers: 95 % CI")
    return _chart(f"{col.group}: {col.header}", width, axis_y + 36, body, "bars")


def robustness_points(table: Table) -> list[tuple[str, str, float, float]]:
    """(row label, shifted set, clean accuracy, shifted accuracy) for every computed row:
    ``acc_<set>`` against ``acc_original`` of the same task, and ``<set>`` against
    ``<set>_minus_clean`` (clean = shifted - difference)."""
    out = []
    for row in table.rows:
        vals = {(c.task, c.metric): cell.mean for (r, c), cell in table.cells.items()
                if r == row and cell.mean is not None}
        for (task, metric), v in vals.items():
            if metric.startswith("acc_") and metric != "acc_original" and (task, "acc_original") in vals:
                out.append((_label(row), f"{task}:{metric[4:]}", vals[(task, "acc_original")], v))
            if metric.endswith("_minus_clean") and (task, metric[: -len("_minus_clean")]) in vals:
                shifted = vals[(task, metric[: -len("_minus_clean")])]
                out.append((_label(row), f"{task}:{metric[: -len('_minus_clean')]}", shifted - v, shifted))
    return out


def robustness_plot(tables: list[Table]) -> str:
    """Clean vs shifted accuracy of every row, from tables that hold every metric of the
    robustness tasks; empty with fewer than two rows."""
    pts = [p for t in tables for p in robustness_points(t)]
    labels = sorted({p[0] for p in pts})
    if len(labels) < 2:
        return ""
    colours = palette(len(labels))
    size, pad = 380, 48
    ticks = [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    sx, sy = _Scale(ticks, pad, size - 12), _Scale(ticks, size - pad, 12)
    dots = [f"<line x1='{sx(0):.1f}' y1='{sy(0):.1f}' x2='{sx(100):.1f}' y2='{sy(100):.1f}' stroke='#bbb' "
            f"stroke-dasharray='4'><title>shifted = clean</title></line>"]
    for label, name, clean, shifted in pts:
        colour = colours[labels.index(label)]
        dots.append(f"<circle class='pt' cx='{sx(clean):.1f}' cy='{sy(shifted):.1f}' r='4' fill='{colour}'>"
                    f"<title>{_esc(label)} {_esc(name)}: clean {clean:.2f}, shifted {shifted:.2f}</title></circle>")
    legend = "".join(f"<text x='{pad + 8}' y='{20 + 14 * i}' fill='{colours[i]}'>{_esc(lab)}</text>"
                     for i, lab in enumerate(labels))
    body = (_axis(sx, size - pad, "clean accuracy (%)") + _axis(sy, pad, "shifted accuracy (%)", vertical=True)
            + "".join(dots) + legend)
    return _chart("Robustness: clean vs shifted accuracy (below the diagonal: lost under the shift)",
                  size, size, body, "scatter")


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


def claims_plot(verdicts: pd.DataFrame) -> str:
    """Each tested claim's effect (treatment - baseline) with its 95 % CI, coloured by verdict."""
    rows = [v for v in verdicts.to_dict("records")
            if v.get("effect") is not None and not pd.isna(v.get("effect")) and not pd.isna(v.get("ci_low"))]
    if not rows:
        return ""
    values = [x for v in rows for x in (v["ci_low"], v["ci_high"], v["effect"])] + [0.0]
    labels = [f"{v['claim']} ({v['preset']}) {v['task']}/{v['metric']} {'↑' if v['direction'] == 'higher' else '↓'}"
              for v in rows]
    label_w = 12 + 6.5 * max(len(label) for label in labels)  # about 6.5 px a character at 11 px
    width, row_h, top = label_w + 400, 18, 4
    sx = _Scale(nice_ticks(min(values), max(values)), label_w, width - 110)
    parts = [f"<line class='zero' x1='{sx(0):.1f}' y1='{top}' x2='{sx(0):.1f}' y2='{top + len(rows) * row_h}' "
             f"stroke='#999' stroke-dasharray='3'/>"]
    for i, (v, label) in enumerate(zip(rows, labels)):
        y = top + i * row_h + row_h / 2
        colour = VERDICT_COLOURS.get(v["verdict"], "#333")
        parts.append(f"<text x='{label_w - 6}' y='{y + 4:.1f}' text-anchor='end'>{_esc(label)}</text>"
                     f"<g class='claim-err'><line x1='{sx(v['ci_low']):.1f}' y1='{y:.1f}' x2='{sx(v['ci_high']):.1f}' "
                     f"y2='{y:.1f}' stroke='{colour}' stroke-width='2'/>"
                     f"<circle class='effect' cx='{sx(v['effect']):.1f}' cy='{y:.1f}' r='4' fill='{colour}'/>"
                     f"<title>{_esc(v['statement'])}: {v['effect']:+.2f} [{v['ci_low']:.2f}, {v['ci_high']:.2f}], "
                     f"{_esc(v['verdict'])}</title></g>"
                     f"<text x='{width - 104}' y='{y + 4:.1f}' fill='{colour}'>{_esc(v['verdict'])}</text>")
    axis_y = top + len(rows) * row_h + 4
    body = "".join(parts) + _axis(sx, axis_y, "effect: treatment - baseline (↑ / ↓: the claimed sign), 95 % CI")
    return _chart("Claims: measured effect and 95 % CI", width, axis_y + 36, body, "claims")


def loss_plots(curves: list[Curve]) -> str:
    """One chart per pretraining stage, one line per (row, seed) with at least two points
    (a single run's page shows its own curves)."""
    charts = []
    for stage in sorted({c.stage for c in curves}):
        mine = [c for c in curves if c.stage == stage and len(c.points) >= 2]
        if not mine:
            continue
        rows = sorted({c.row for c in mine})
        colours = palette(len(rows))
        xs = [p[0] for c in mine for p in c.points]
        ys = [p[1] for c in mine for p in c.points]
        width, height, pad = 440, 300, 48
        sx = _Scale(nice_ticks(min(xs), max(xs)), pad, width - 12)
        sy = _Scale(nice_ticks(min(ys), max(ys)), height - pad, 12)
        lines = []
        for c in mine:
            colour = colours[rows.index(c.row)]
            pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in c.points)
            lines.append(f"<polyline class='curve' points='{pts}' fill='none' stroke='{colour}' stroke-width='1.5'>"
                         f"<title>{_esc(c.row)} seed {c.seed}</title></polyline>")
        legend = "".join(f"<text x='{width - 16}' y='{24 + 14 * i}' text-anchor='end' "
                         f"fill='{colours[i]}'>{_esc(r)}</text>" for i, r in enumerate(rows))
        body = _axis(sx, height - pad, "step") + _axis(sy, pad, "loss", vertical=True) + "".join(lines) + legend
        charts.append(_chart(f"{stage}: training loss (one line per seed)", width, height, body, "loss"))
    return "".join(charts)


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
    if has_content(main):
        sections.append(("summary", "Summary by task family", summary_html(main)))
        sections.append(("main", main.title, table_html(main, "t-main")))
        bars = "".join(bar_chart(main, c) for c in main.columns)
        if bars:
            sections.append(("charts", "Each main metric, by row", f"<div class='charts'>{bars}</div>"))
    if scatter := robustness_plot(list(robustness)):
        sections.append(("robustness", "Robustness", f"<div class='charts'>{scatter}</div>"))
    if verdicts is not None and len(verdicts):
        sections.append(("claims", "Published claims, checked on these records",
                         claims_plot(verdicts) + claims_table(verdicts)))
    if loss := loss_plots(list(curves)):
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
            f"<script>{_SCRIPT}</script></body></html>\n")
