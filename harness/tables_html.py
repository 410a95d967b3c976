"""One static HTML leaderboard: sortable tables, per-metric bar charts and a
robustness plot (clean vs shifted accuracy), with no server and no external files."""
from __future__ import annotations

import html
from typing import Any

from harness.tables import ROW_KEYS, Table

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2;cursor:pointer;user-select:none}
td.key{text-align:left}
td.best{font-weight:bold;background:#e8f5e9}
tr.published td{color:#666;font-style:italic}
.charts{display:flex;flex-wrap:wrap;gap:18px}
.chart{border:1px solid #ddd;padding:6px}
.chart h4{margin:2px 0 6px 0;font-size:12px}
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


def _esc(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def table_html(table: Table, table_id: str) -> str:
    head = "".join(f"<th>{_esc(k)}</th>" for k in ROW_KEYS)
    head += "".join(f"<th title='{_esc(c.group)}'>{_esc(c.group)}<br>{_esc(c.header)}</th>" for c in table.columns)
    body = []
    for row in table.rows:
        published = any(c.published for k, c in table.cells.items() if k[0] == row)
        tds = "".join(f"<td class='key'>{_esc(v)}</td>" for v in row)
        for col in table.columns:
            cell = table.cells.get((row, col))
            if cell is None:
                tds += "<td></td>"
                continue
            cls = " class='best'" if row in table.marked(col) else ""
            value = "" if cell.mean is None else f"{cell.mean:.6g}"
            tds += f"<td{cls} data-v='{value}' title='{_esc(cell.source)}'>{_esc(cell.text())}</td>"
        body.append(f"<tr{' class=published' if published else ''}>{tds}</tr>")
    notes = "".join(f"<p><em>{_esc(n)}</em></p>" for n in table.notes)
    return (f"<h2>{_esc(table.title)}</h2><table class='sortable' id='{table_id}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>{notes}")


def bar_chart(table: Table, col_index: int) -> str:
    col = table.columns[col_index]
    points = [(" / ".join(str(v) for v in row[:2]), c.mean) for row in table.rows
              if (c := table.cells.get((row, col))) and c.mean is not None and not c.published]
    if not points:
        return ""
    lo, hi = min(0.0, min(v for _, v in points)), max(0.0, max(v for _, v in points))
    span = (hi - lo) or 1.0
    width, bar_h, label_w = 360, 16, 150
    scale = (width - label_w - 50) / span
    zero = label_w + (0 - lo) * scale
    parts = []
    for i, (label, v) in enumerate(points):
        y = 4 + i * (bar_h + 4)
        x0, x1 = sorted((zero, label_w + (v - lo) * scale))
        parts.append(f"<text x='{label_w - 4}' y='{y + 12}' font-size='11' text-anchor='end'>{_esc(label)}</text>"
                     f"<rect class='bar' x='{x0:.1f}' y='{y}' width='{max(x1 - x0, 1):.1f}' height='{bar_h}' "
                     f"fill='#4a90d9'/><text x='{x1 + 3:.1f}' y='{y + 12}' font-size='11'>{v:.2f}</text>")
    h = 8 + len(points) * (bar_h + 4)
    return (f"<div class='chart'><h4>{_esc(col.group)}: {_esc(col.header)}</h4>"
            f"<svg width='{width}' height='{h}'>{''.join(parts)}</svg></div>")


def robustness_points(table: Table) -> list[tuple[str, str, float, float]]:
    """(row label, shifted set, clean accuracy, shifted accuracy) for every row."""
    out = []
    for row in table.rows:
        vals = {(c.task, c.metric): cell.mean for (r, c), cell in table.cells.items()
                if r == row and cell.mean is not None and not cell.published}
        label = " / ".join(str(v) for v in row[:2])
        for (task, metric), v in vals.items():
            if metric.startswith("acc_") and metric != "acc_original" and (task, "acc_original") in vals:
                out.append((label, f"{task}:{metric[4:]}", vals[(task, "acc_original")], v))
            if metric.endswith("_minus_clean") and (task, metric[: -len("_minus_clean")]) in vals:
                shifted = vals[(task, metric[: -len("_minus_clean")])]
                out.append((label, f"{task}:{metric[: -len('_minus_clean')]}", shifted - v, shifted))
    return out


def robustness_plot(table: Table) -> str:
    pts = robustness_points(table)
    if not pts:
        return ""
    size, pad = 360, 40
    scale = (size - 2 * pad) / 100.0
    dots = []
    labels = sorted({p[0] for p in pts})
    palette = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    for label, name, clean, shifted in pts:
        color = palette[labels.index(label) % len(palette)]
        x, y = pad + clean * scale, size - pad - shifted * scale
        dots.append(f"<circle class='pt' cx='{x:.1f}' cy='{y:.1f}' r='4' fill='{color}'>"
                    f"<title>{_esc(label)} {_esc(name)}: clean {clean:.2f}, shifted {shifted:.2f}</title></circle>")
    legend = "".join(f"<text x='{pad + 4}' y='{pad + 14 * (i + 1)}' font-size='11' fill='{palette[i % len(palette)]}'>"
                     f"{_esc(lab)}</text>" for i, lab in enumerate(labels))
    axes = (f"<line x1='{pad}' y1='{size - pad}' x2='{size - pad}' y2='{size - pad}' stroke='#333'/>"
            f"<line x1='{pad}' y1='{pad}' x2='{pad}' y2='{size - pad}' stroke='#333'/>"
            f"<line x1='{pad}' y1='{size - pad}' x2='{size - pad}' y2='{pad}' stroke='#bbb' stroke-dasharray='4'/>"
            f"<text x='{size / 2}' y='{size - 8}' font-size='11' text-anchor='middle'>clean accuracy (%)</text>"
            f"<text x='12' y='{size / 2}' font-size='11' transform='rotate(-90 12 {size / 2})' "
            f"text-anchor='middle'>shifted accuracy (%)</text>")
    return (f"<div class='chart' id='robustness'><h4>Robustness: clean vs shifted accuracy</h4>"
            f"<svg width='{size}' height='{size}'>{axes}{''.join(dots)}{legend}</svg></div>")


def page(tables: list[Table], title: str = "Leaderboard") -> str:
    sections = []
    for i, t in enumerate(tables):
        charts = "".join(bar_chart(t, j) for j in range(len(t.columns)))
        sections.append(table_html(t, f"t{i}") + robustness_plot(t) + f"<div class='charts'>{charts}</div>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{_esc(title)}</h1>{''.join(sections)}"
            f"<script>{_SCRIPT}</script></body></html>\n")
