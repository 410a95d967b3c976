"""Differences between two rows of records (a method + recipe each), with their uncertainty.

A *row* is every ``ok`` comparison record of one (method, recipe) pair: one record per
seed and task. For a (task, metric) the two rows are compared by
:func:`harness.results.stats.paired_bootstrap` when every record of both rows kept its per-item
table for that metric and all of them hold the same test items, else by Welch's t on the
per-seed values (:func:`harness.results.stats.welch`). Records of ``plumbing`` tasks are left
out: their numbers check a pipeline, not a method.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.core.errors import HarnessError
from harness.core.text_table import text_table
from harness.results import stats, store
from harness.results.record_schema import UNRANKED_ROLES


@dataclass(frozen=True)
class RowRef:
    """``method`` or ``method:recipe`` (the recipe label records carry; default: every recipe
    of the method, which must then be one)."""

    method: str
    recipe: str | None = None

    @classmethod
    def parse(cls, text: str) -> "RowRef":
        method, _, recipe = text.partition(":")
        if not method:
            raise HarnessError(f"row {text!r}: expected METHOD or METHOD:RECIPE")
        return cls(method, recipe or None)

    def __str__(self) -> str:
        return f"{self.method}:{self.recipe}" if self.recipe else self.method


def role_of(record: dict[str, Any]) -> str:
    """A record's role; records written before roles existed are comparisons."""
    role = record.get("role")
    return role if isinstance(role, str) else "comparison"


def comparable(records: pd.DataFrame) -> pd.DataFrame:
    """The ok task records that rank methods (``role`` neither ``plumbing`` nor ``dev-run``)."""
    if not len(records):
        return records
    keep = [rec["status"] == "ok" and role_of(rec) not in UNRANKED_ROLES for rec in records.to_dict("records")]
    return records[keep]


def select_row(records: pd.DataFrame, row: RowRef) -> pd.DataFrame:
    """The records of one row; an error names the rows that exist when it matches none or several."""
    recs = records[records["method"] == row.method] if len(records) else records
    if row.recipe is not None and len(recs):
        recs = recs[recs["recipe"] == row.recipe]
    recipes = sorted(set(recs["recipe"])) if len(recs) else []
    if not recipes:
        known = sorted({f"{m}:{r}" for m, r in zip(records["method"], records["recipe"])}) if len(records) else []
        raise HarnessError(f"no records of row {row} (rows with records: {', '.join(known) or 'none'})")
    if len(recipes) > 1:
        raise HarnessError(f"row {row} has several recipes ({', '.join(recipes)}); name one as {row.method}:RECIPE")
    return recs


@dataclass
class Series:
    """One row's values of one (task, metric): per seed, with per-item tables when kept."""

    seeds: list[int]
    values: list[float]
    tables: list[dict[str, Any] | None]  # per seed: the metric's item statistic, sizes and ids, or None
    higher_is_better: bool

    def interval(self) -> stats.Interval:
        """Over seeds (t) when n >= 2; with one seed, the bootstrap interval of its test items."""
        iv = stats.seed_interval(self.values)
        if len(self.values) == 1 and self.tables[0] is not None:
            low, high = stats.bootstrap_interval(self.tables[0]["stat"], self.tables[0]["sizes"])
            return stats.Interval(iv.mean, None, 1, low, high, "bootstrap")
        return iv


def series(records: pd.DataFrame, task: str, metric: str) -> Series | None:
    """The values of ``metric`` of ``task`` in one row's records (None when absent)."""
    recs = records[records["task"] == task] if len(records) else records
    seeds, values, tables, higher = [], [], [], True
    for rec in recs.sort_values("seed").to_dict("records"):
        if metric not in (rec.get("metrics") or {}):
            continue
        seeds.append(int(rec["seed"]))
        values.append(float(rec["metrics"][metric]))
        higher = bool((rec.get("higher_is_better") or {}).get(metric, True))
        tables.append(item_statistic(rec, metric))
    return Series(seeds, values, tables, higher) if values else None


_TABLES: dict[tuple[str, str], Any] = {}


def item_statistic(rec: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """A record's per-item statistic of ``metric`` (with its group sizes and item ids), or
    None when the record kept no per-item values for it."""
    entry = rec.get("samples")
    if not isinstance(entry, dict) or metric not in (entry.get("metrics") or []):
        return None
    key = (str(rec.get("path")), str(entry.get("sha256")))
    if key not in _TABLES:
        _TABLES[key] = store.load_samples(rec)
    table = _TABLES[key]
    if table is None:
        return None
    groups = table.metric_groups(metric)
    return {"stat": table.statistic(metric), "sizes": {g: table.sizes[g] for g in groups},
            "ids": {g: table.groups[g].ids for g in groups}}


def paired(a: Series, b: Series) -> bool:
    """Whether every seed of both rows holds per-item values over the same test items."""
    tabs = [t for t in a.tables + b.tables]
    if any(t is None for t in tabs):
        return False
    first = tabs[0]
    return all(t["sizes"] == first["sizes"] and all((t["ids"][g] == first["ids"][g]).all() for g in first["ids"])
               for t in tabs[1:])


def compare_series(a: Series, b: Series) -> stats.Comparison:
    """B - A: paired bootstrap over seeds and shared test items when possible, else Welch."""
    if paired(a, b):
        return stats.paired_bootstrap([t["stat"] for t in a.tables], [t["stat"] for t in b.tables],
                                      a.tables[0]["sizes"])
    return stats.welch(a.values, b.values)


def compare_rows(records: pd.DataFrame, row_a: RowRef, row_b: RowRef) -> pd.DataFrame:
    """One line per (task, metric) both rows report: mean A, mean B, B - A, 95 % CI, p, test."""
    recs = comparable(records)
    ra, rb = select_row(recs, row_a), select_row(recs, row_b)
    lines = []
    for task in sorted(set(ra["task"]) & set(rb["task"])):
        metrics_a = {m for ms in ra[ra["task"] == task]["metrics"] for m in (ms or {})}
        metrics_b = {m for ms in rb[rb["task"] == task]["metrics"] for m in (ms or {})}
        for metric in sorted(metrics_a & metrics_b):
            sa, sb = series(ra, task, metric), series(rb, task, metric)
            if sa is None or sb is None:
                continue
            c = compare_series(sa, sb)
            lines.append({"task": task, "metric": metric, "higher_is_better": sa.higher_is_better,
                          "n_a": len(sa.values), "mean_a": stats.seed_interval(sa.values).mean,
                          "n_b": len(sb.values), "mean_b": stats.seed_interval(sb.values).mean,
                          "diff": c.diff, "ci_low": c.low, "ci_high": c.high, "p_value": c.p_value,
                          "test": c.method, "verdict": c.verdict(sa.higher_is_better)})
    if not lines:
        raise HarnessError(f"rows {row_a} and {row_b} share no (task, metric) with ok records")
    return pd.DataFrame(lines)


def format_comparison(df: pd.DataFrame, row_a: RowRef, row_b: RowRef) -> str:
    """A text table of :func:`compare_rows` (B - A; 'better' is B's verdict), its columns
    as wide as their widest cell."""
    head = (f"B - A with A = {row_a}, B = {row_b}; 95 % CI; p two-sided; verdict for B "
            "(better / worse: p < 0.05, tie: not significant, untested: fewer than 2 seeds and no per-item values)")
    rows = []
    for r in df.to_dict("records"):
        ci = "-" if pd.isna(r["ci_low"]) else f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        p = "-" if pd.isna(r["p_value"]) else f"{r['p_value']:.4f}"
        arrow = "↑" if r["higher_is_better"] else "↓"
        rows.append([r["task"], f"{r['metric']} {arrow}", f"{r['mean_a']:.2f}", f"{r['mean_b']:.2f}",
                     f"{r['diff']:+.2f}", ci, p, f"{r['n_a']}/{r['n_b']}", r["test"], r["verdict"]])
    header = ["task", "metric", "A", "B", "B - A", "95% CI", "p", "n", "test", "verdict"]
    return head + "\n" + text_table(header, rows, right=(2, 3, 4, 5, 6, 7))


def compare_main(a: str, b: str, records: list[Path], duplicates: str = "refuse") -> int:
    """``harness compare A B``: A and B are METHOD[:RECIPE] rows of the records folders."""
    df = compare_rows(store.load_records(records, duplicates=duplicates), RowRef.parse(a), RowRef.parse(b))
    print(format_comparison(df, RowRef.parse(a), RowRef.parse(b)))
    return 0
