"""How far a trained row sits above the untrained floor, in units of seed noise.

For every main metric of the comparison tasks two rows share (see
:func:`harness.results.compare.comparable`), :func:`separation` gives the gap trained - floor
(sign-adjusted, so positive = the trained row is better), the pooled seed std, their
ratio, each row's 95 % interval half-width over seeds, whether the trained mean sits at
a floor or ceiling (outside 5-95 % for percentage metrics), and the verdict of the
benchmark's sanity criterion: gap > ``min_ratio`` x pooled std, not at floor or ceiling,
and both half-widths at most ``max_half_width`` points.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from harness.core import registry
from harness.core.text_table import text_table
from harness.results import compare, stats
from harness.results.tables import FRACTION_TASKS

RANGE = (5.0, 95.0)


@dataclass(frozen=True)
class Criterion:
    min_ratio: float = 3.0
    max_half_width: float = 3.0
    percent_range: tuple[float, float] = RANGE


def main_metric_names(task_type: str, reported: set[str]) -> list[str]:
    """The catalog's main metrics that the records report (all reported when none declared)."""
    mains = registry.task_entry(task_type).main_metrics if task_type in registry.tasks() else None
    return sorted(reported) if mains is None else [m for m in mains if m in reported]




def is_percent(task_type: str) -> bool:
    """Whether a task's metrics are percentages."""
    return task_type not in FRACTION_TASKS


def separation(records: pd.DataFrame, trained: compare.RowRef, floor: compare.RowRef,
               criterion: Criterion = Criterion()) -> pd.DataFrame:
    recs = compare.comparable(records)
    rt, rf = compare.select_row(recs, trained), compare.select_row(recs, floor)
    rows = []
    for task in sorted(set(rt["task"]) & set(rf["task"])):
        task_type = str(rt[rt["task"] == task]["task_type"].iloc[0])
        reported = {m for ms in rt[rt["task"] == task]["metrics"] for m in (ms or {})}
        for metric in main_metric_names(task_type, reported):
            st, sf = compare.series(rt, task, metric), compare.series(rf, task, metric)
            if st is None or sf is None:
                continue
            sign = 1.0 if st.higher_is_better else -1.0
            it, iff = stats.seed_interval(st.values), stats.seed_interval(sf.values)
            gap = sign * (it.mean - iff.mean)
            pooled = stats.pooled_std(st.values, sf.values) if min(it.n, iff.n) >= 2 else math.nan
            ratio = gap / pooled if pooled and not math.isnan(pooled) else (math.inf if gap > 0 and pooled == 0
                                                                             else math.nan)
            half_t, half_f = it.half_width, iff.half_width
            low, high = criterion.percent_range
            pct = is_percent(task_type)
            in_range = (low <= it.mean <= high) if pct else True
            widths_ok = all(h is not None and h <= (criterion.max_half_width if pct else criterion.max_half_width / 100)
                            for h in (half_t, half_f))
            passed = bool(ratio > criterion.min_ratio and in_range and widths_ok)
            rows.append({"task": task, "metric": metric, "higher_is_better": st.higher_is_better,
                         "n_trained": it.n, "trained": it.mean, "n_floor": iff.n, "floor": iff.mean, "gap": gap,
                         "pooled_std": pooled, "ratio": ratio, "half_width_trained": half_t,
                         "half_width_floor": half_f, "in_range": in_range, "passed": passed})
    return pd.DataFrame(rows)


def format_separation(df: pd.DataFrame, trained: compare.RowRef, floor: compare.RowRef,
                      criterion: Criterion = Criterion()) -> str:
    lines = [f"trained = {trained}, floor = {floor}; gap = trained - floor (sign-adjusted: > 0 is better); "
             f"ratio = gap / pooled seed std; pass: ratio > {criterion.min_ratio:g}, trained mean in "
             f"{criterion.percent_range[0]:g}-{criterion.percent_range[1]:g} % (percentages), both 95 % CI "
             f"half-widths <= {criterion.max_half_width:g} points (0.03 for fractions)"]
    rows = []
    for r in df.to_dict("records"):
        f = lambda v: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"  # noqa: E731
        why = [] if r["passed"] else [w for w, bad in (("gap", not r["ratio"] > criterion.min_ratio),
                                                        ("range", not r["in_range"])) if bad]
        if not r["passed"] and not why:
            why = ["ci"]
        rows.append([r["task"], r["metric"], f"{r['trained']:.2f}", f"{r['floor']:.2f}", f"{r['gap']:+.2f}",
                     f(r["pooled_std"]), f(r["ratio"]), f(r["half_width_trained"]), f(r["half_width_floor"]),
                     "PASS" if r["passed"] else "FAIL (" + ", ".join(why) + ")"])
    lines.append(text_table(["task", "metric", "trained", "floor", "gap", "pooled", "ratio", "hw tr", "hw fl",
                             "verdict"], rows, right=range(2, 9)))
    n = len(df)
    lines.append(f"{int(df['passed'].sum()) if n else 0} of {n} main metrics pass")
    return "\n".join(lines)
