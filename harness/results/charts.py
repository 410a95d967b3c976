"""The leaderboard's charts as Vega-Lite specs (built with Altair), and the HTML that draws
them offline: the Vega, Vega-Lite and vega-embed bundle that vl-convert ships, inlined
once per page, with every spec embedded in the page itself (no request leaves the page).

Each builder returns a spec (a dict) or None when there is nothing to compare: a chart
needs at least two rows.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any

import altair as alt
import pandas as pd

from harness.results.tables import Table, metric_bounds

VERDICT_COLOURS = {"holds": "#2ca02c", "contradicted": "#d62728", "not significant": "#7f7f7f"}
WIDTH = 460


def palette(n: int) -> list[str]:
    """``n`` colours that all differ: hues spread evenly round the wheel, lightness alternating
    between neighbours so that adjacent hues stay apart."""
    return [f"hsl({round(360 * i / max(n, 1))}, 70%, {38 if i % 2 else 52}%)" for i in range(n)]


def row_label(row: tuple) -> str:
    return " / ".join(str(v) for v in row[:2])


def _row_colours(labels: Iterable[str]) -> alt.Scale:
    domain = sorted(set(labels))
    return alt.Scale(domain=domain, range=palette(len(domain)))


def metric_bars(table: Table) -> dict[str, Any] | None:
    """One bar chart of the rows' means with 95 % CI whiskers (clipped to the metric's
    bounds, as in the tables), for the metric chosen in its menu (every main metric that at
    least two rows have)."""
    points = []
    for col in table.columns:
        mine = []
        for row in table.rows:
            cell = table.cells.get((row, col))
            if cell is None or cell.mean is None:
                continue
            iv = cell.interval(metric_bounds(col))
            low, high = (iv.low, iv.high) if iv is not None and iv.low is not None else (None, None)
            sense = "higher" if col.higher_is_better else "lower"
            mine.append({"row": row_label(row), "metric": f"{col.group}: {col.header} ({sense} is better)",
                         "mean": cell.mean, "low": low, "high": high})
        if len(mine) >= 2:
            points += mine
    if not points:
        return None
    data = pd.DataFrame(points)
    metrics = list(dict.fromkeys(data["metric"]))
    pick = alt.param(name="metric", value=metrics[0], bind=alt.binding_select(options=metrics, name="metric: "))
    base = alt.Chart(data).transform_filter(alt.datum.metric == pick)
    y = alt.Y("row:N", title=None, sort=None, axis=alt.Axis(labelLimit=300))
    x_title = "mean; whiskers: 95 % CI"
    bars = base.mark_bar().encode(
        y=y, x=alt.X("mean:Q", title=x_title), color=alt.Color("row:N", scale=_row_colours(
            data["row"]), legend=None),
        tooltip=["row:N", "metric:N", alt.Tooltip("mean:Q", format=".2f"), alt.Tooltip("low:Q", format=".2f"),
                 alt.Tooltip("high:Q", format=".2f")])
    whiskers = base.transform_filter("isValid(datum.low)").mark_errorbar(ticks=True).encode(
        y=y, x=alt.X("low:Q", title=x_title), x2="high:Q")
    return (bars + whiskers).add_params(pick).properties(width=WIDTH, title="Each main metric, by row").to_dict()


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
                out.append((row_label(row), f"{task}:{metric[4:]}", vals[(task, "acc_original")], v))
            if metric.endswith("_minus_clean") and (task, metric[: -len("_minus_clean")]) in vals:
                shifted = vals[(task, metric[: -len("_minus_clean")])]
                out.append((row_label(row), f"{task}:{metric[: -len('_minus_clean')]}", shifted - v, shifted))
    return out


def robustness(tables: Iterable[Table]) -> dict[str, Any] | None:
    """Clean vs shifted accuracy of every row (below the diagonal: lost under the shift)."""
    pts = [p for t in tables for p in robustness_points(t)]
    if len({p[0] for p in pts}) < 2:
        return None
    data = pd.DataFrame(pts, columns=["row", "shifted set", "clean", "shifted"])
    percent = alt.Scale(domain=[0, 100])
    diagonal = alt.Chart(pd.DataFrame({"clean": [0.0, 100.0], "shifted": [0.0, 100.0]})).mark_line(
        color="#bbb", strokeDash=[4, 4]).encode(x="clean:Q", y="shifted:Q")
    dots = alt.Chart(data).mark_circle(size=60, opacity=0.9).encode(
        x=alt.X("clean:Q", scale=percent, title="clean accuracy (%)"),
        y=alt.Y("shifted:Q", scale=percent, title="shifted accuracy (%)"),
        color=alt.Color("row:N", scale=_row_colours(data["row"]), title="row"),
        tooltip=["row:N", "shifted set:N", alt.Tooltip("clean:Q", format=".2f"), alt.Tooltip("shifted:Q", format=".2f")])
    return (diagonal + dots).properties(width=380, height=380,
                                        title="Robustness: clean vs shifted accuracy").to_dict()


def claims(verdicts: pd.DataFrame) -> dict[str, Any] | None:
    """Each tested claim's effect (treatment - baseline) with its 95 % CI, coloured by verdict."""
    rows = [v for v in verdicts.to_dict("records")
            if v.get("effect") is not None and not pd.isna(v.get("effect")) and not pd.isna(v.get("ci_low"))]
    if not rows:
        return None
    data = pd.DataFrame([{"claim": f"{v['claim']} ({v['preset']}) {v['task']}/{v['metric']} "
                                   f"{'↑' if v['direction'] == 'higher' else '↓'}",
                          "statement": v["statement"], "effect": float(v["effect"]), "low": float(v["ci_low"]),
                          "high": float(v["ci_high"]), "verdict": v["verdict"]} for v in rows])
    y = alt.Y("claim:N", sort=None, title=None, axis=alt.Axis(labelLimit=500))
    colour = alt.Color("verdict:N", scale=alt.Scale(domain=list(VERDICT_COLOURS), range=list(VERDICT_COLOURS.values())))
    tip = ["claim:N", "statement:N", alt.Tooltip("effect:Q", format="+.2f"), alt.Tooltip("low:Q", format=".2f"),
           alt.Tooltip("high:Q", format=".2f"), "verdict:N"]
    base = alt.Chart(data)
    zero = alt.Chart().mark_rule(color="#999", strokeDash=[3, 3]).encode(x=alt.datum(0))
    x_title = "effect: treatment - baseline (↑ / ↓: the claimed sign), 95 % CI"
    spans = base.mark_rule(strokeWidth=2).encode(y=y, x=alt.X("low:Q", title=x_title), x2="high:Q", color=colour,
                                                 tooltip=tip)
    effects = base.mark_point(filled=True, size=50).encode(y=y, x=alt.X("effect:Q", title=x_title), color=colour,
                                                           tooltip=tip)
    return alt.layer(zero, spans, effects).properties(width=WIDTH, title="Claims: measured effect and 95 % CI").to_dict()


def loss_curves(curves: Iterable[Any]) -> list[dict[str, Any]]:
    """One chart per pretraining stage, one line per (row, seed) with at least two points;
    ``curves`` hold ``row``, ``stage``, ``seed`` and ``points`` ((step, loss), ...)."""
    specs = []
    curves = [c for c in curves if len(c.points) >= 2]
    for stage in sorted({c.stage for c in curves}):
        data = pd.DataFrame([{"row": c.row, "seed": c.seed, "step": s, "loss": v}
                             for c in curves if c.stage == stage for s, v in c.points])
        specs.append(alt.Chart(data).mark_line(strokeWidth=1.5).encode(
            x=alt.X("step:Q"), y=alt.Y("loss:Q", scale=alt.Scale(zero=False)),
            color=alt.Color("row:N", scale=_row_colours(data["row"])), detail="seed:N",
            tooltip=["row:N", "seed:N", "step:Q", alt.Tooltip("loss:Q", format=".4f")],
        ).properties(width=WIDTH, height=280, title=f"{stage}: training loss (one line per seed)").to_dict())
    return specs


@functools.lru_cache(maxsize=1)
def _bundle() -> str:
    import vl_convert

    return vl_convert.javascript_bundle()


def chart_div(chart_id: str) -> str:
    return f"<div class='chart' id='{chart_id}'></div>"


def embed_script(specs: Mapping[str, dict[str, Any]]) -> str:
    """The scripts that draw ``specs`` (chart id -> spec) into their divs, as SVG; empty
    when there are none."""
    if not specs:
        return ""
    data = json.dumps(dict(specs), sort_keys=True, ensure_ascii=False).replace("</", "<\\/")
    return (f"<script>{_bundle()}</script><script>var SPECS={data};"
            "Object.keys(SPECS).forEach(function(id){vegaEmbed('#'+id,SPECS[id],{actions:false,renderer:'svg'})"
            ".catch(function(e){document.getElementById(id).textContent='chart failed: '+e;});});</script>")
