"""Leaderboards from result records: Markdown, CSV, LaTeX and a static HTML page.

Rows are (method, recipe, backbone, pretraining data, schedule); columns are (task, metric) under a
group that names the task version and the framework with its version, so numbers from
different protocols never share a column. A cell is the mean +- std over seeds, the 95 %
interval (t over seeds; for one seed, the bootstrap of its test items) and n; the best
row of a column is marked only when it is significantly better than the others, and rows
tied with it are marked alike (:meth:`Table.marked`); failed units show as ``failed``.
Records of ``plumbing`` tasks go to their own table, which marks nothing. Published
paper-scale numbers (``results/reference/*.csv``, :func:`load_reference`) are never put in
these columns: the leaderboard lists them in a section of their own.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.results import compare, stats
from harness.core import paths, registry
from harness.core.errors import ConfigError

ROW_KEYS = ("method", "recipe", "backbone", "pretrain_data", "schedule")
BACKBONE = ROW_KEYS.index("backbone")
MARK_NOTE = ("mean ± std over seeds [95 % CI] n = seeds. Bold: the best row when it is significantly better "
             "than every other (paired bootstrap over seeds and test items, or Welch's t over seeds; p < 0.05), "
             "together with every row not significantly worse than it; no bold where that cannot be tested.")
FLOOR_METHOD = "random"  # the untrained floors: random init (+ BN statistics)
FLOOR_MARK = "°"
FLOOR_NOTE = (f"{FLOOR_MARK}: an untrained floor of the same backbone (method {FLOOR_METHOD}) is not significantly "
              "worse than this value (same tests as the bold marks): at this scale the metric does not measure the "
              "method.")


@dataclass(frozen=True)
class Column:
    task: str
    metric: str
    version: str
    framework: str
    higher_is_better: bool

    @property
    def group(self) -> str:
        return f"{self.task} v{self.version} ({self.framework})"

    @property
    def header(self) -> str:
        return f"{self.metric} {'↑' if self.higher_is_better else '↓'}"


@dataclass
class Cell:
    """The values of one (row, column): one per seed, with each seed's per-item statistic
    when the record kept one (see :mod:`harness.results.compare`)."""

    values: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    items: list[dict[str, Any] | None] = field(default_factory=list)
    failed: int = 0

    @property
    def mean(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        if len(self.values) < 2:
            return None
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (len(self.values) - 1))

    def series(self, higher_is_better: bool) -> compare.Series:
        return compare.Series(self.seeds, self.values, self.items, higher_is_better)

    def interval(self, bounds: tuple[float | None, float | None] = (None, None)) -> stats.Interval | None:
        """The 95 % interval: t over seeds (n >= 2), else the bootstrap of one run's test items;
        clipped to the metric's ``bounds`` (a percentage never leaves [0, 100])."""
        if not self.values:
            return None
        iv = self.series(True).interval()
        if iv.low is None:
            return iv
        lo, hi = bounds
        clip = lambda x: min(max(x, lo if lo is not None else x), hi if hi is not None else x)  # noqa: E731
        return dataclasses.replace(iv, low=clip(iv.low), high=clip(iv.high))

    def text(self, digits: int = 2, bounds: tuple[float | None, float | None] = (None, None)) -> str:
        if not self.values:
            return "failed" if self.failed else ""
        out = f"{self.mean:.{digits}f}"
        if self.std is not None:
            out += f" ± {self.std:.{digits}f}"
        iv = self.interval(bounds)
        if iv is not None and iv.low is not None:
            out += f" [{iv.low:.{digits}f}, {iv.high:.{digits}f}]"
        out += f" n={len(self.values)}"
        if self.failed:
            out += f" ({self.failed} failed)"
        return out


@dataclass
class Table:
    title: str
    rows: list[tuple]  # row keys
    columns: list[Column]
    cells: dict[tuple[tuple, Column], Cell]
    notes: list[str] = field(default_factory=list)
    # (column, the rows with a computed value) -> marked rows; tables built from the same
    # records may share one, so a column's comparisons run once for all of them
    marks: dict[tuple[Column, frozenset], frozenset] = field(default_factory=dict, repr=False)
    ranked: bool = True  # False: a table of pipeline checks, where nothing is marked best
    # (row, column) -> whether a floor is not significantly below it; shared like ``marks``
    floor_marks: dict[tuple[tuple, Column], bool] = field(default_factory=dict, repr=False)

    def best(self, col: Column) -> tuple | None:
        """The row with the best mean of a column."""
        scored = [(c.mean, r) for r in self.rows if (c := self.cells.get((r, col))) and c.values]
        if not scored:
            return None
        return (max if col.higher_is_better else min)(scored, key=lambda t: t[0])[1]

    def marked(self, col: Column) -> frozenset:
        """The rows marked best in a column: the best row alone when it is significantly
        better than every other row; with the rows not significantly different from it
        (ties, marked alike) otherwise. Nothing is marked when the best and the runner-up
        cannot be tested (fewer than two seeds each and no per-item values), nor in a
        column with a single row."""
        if not self.ranked:
            return frozenset()
        key = (col, frozenset(r for r in self.rows
                              if (c := self.cells.get((r, col))) and c.values))
        if key not in self.marks:
            self.marks[key] = frozenset(self._top_group(col))
        return self.marks[key]

    def floor_wins(self, row: tuple, col: Column) -> bool:
        """Whether an untrained floor row of the same backbone is not significantly worse
        than ``row`` in ``col`` (tie or better; untestable pairs are not marked). Floors
        themselves are never marked."""
        cell = self.cells.get((row, col))
        if not self.ranked or row[0] == FLOOR_METHOD or cell is None or not cell.values:
            return False
        if (row, col) not in self.floor_marks:
            series = cell.series(col.higher_is_better)
            verdicts = [compare.compare_series(f.series(col.higher_is_better), series).verdict(col.higher_is_better)
                        for r in self.rows if r[0] == FLOOR_METHOD and r[BACKBONE] == row[BACKBONE]
                        and (f := self.cells.get((r, col))) and f.values]
            self.floor_marks[(row, col)] = any(v in ("tie", "worse") for v in verdicts)
        return self.floor_marks[(row, col)]

    def cell_text(self, row: tuple, col: Column) -> str:
        """A cell's text with the floor mark where an untrained floor is not below it."""
        cell = self.cells.get((row, col))
        if cell is None:
            return ""
        return cell.text(bounds=metric_bounds(col)) + (f" {FLOOR_MARK}" if self.floor_wins(row, col) else "")

    def _top_group(self, col: Column) -> set:
        rows = [r for r in self.rows if (c := self.cells.get((r, col))) and c.values]
        best = self.best(col)
        if best is None or len(rows) < 2:
            return set()
        sign = 1.0 if col.higher_is_better else -1.0
        others = sorted((r for r in rows if r != best), key=lambda r: -sign * self.cells[(r, col)].mean)
        top = self.cells[(best, col)].series(col.higher_is_better)
        verdicts = {r: compare.compare_series(self.cells[(r, col)].series(col.higher_is_better), top)
                    .verdict(col.higher_is_better) for r in others}
        if verdicts[others[0]] == "untested":
            return set()
        return {best} | {r for r, v in verdicts.items() if v != "better"}


FRACTION_TASKS = ("bias_diagnostic",)  # metrics on their own scales (cosine distances, R^2), not percentages


def metric_bounds(col: "Column") -> tuple[float | None, float | None]:
    """The range a column's metric cannot leave: [0, 100] for percentages; R^2 is at most 1;
    a cosine distance at least 0."""
    if col.task.split(".")[0] not in FRACTION_TASKS:
        return (0.0, 100.0)
    if "r2" in col.metric:
        return (None, 1.0)
    return (0.0, None) if col.metric.startswith("coupling") else (None, None)


def average_ranks(values: dict[Any, float], higher_is_better: bool) -> dict[Any, float]:
    """1 for the best value, 2 for the next...; tied values share the mean of their ranks."""
    order = sorted(values, key=lambda k: values[k], reverse=higher_is_better)
    ranks: dict[Any, float] = {}
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        ranks.update({order[k]: (i + j) / 2 + 1 for k in range(i, j + 1)})
        i = j + 1
    return ranks


def family_summary(table: Table) -> tuple[list[str], dict[tuple, dict[str, tuple[float, float]]]]:
    """The compact view: per task family (task type) and row, the row's mean rank over the
    family's columns (1 = best mean; ties share the average rank) and its mean score.
    Returns the families in column order and {row: {family: (mean rank, mean score)}}."""
    families: dict[str, list[Column]] = {}
    for col in table.columns:
        families.setdefault(col.task.split(".")[0], []).append(col)
    ranks: dict[tuple, dict[str, list[float]]] = {}
    scores: dict[tuple, dict[str, list[float]]] = {}
    for family, cols in families.items():
        for col in cols:
            means = {r: c.mean for r in table.rows if (c := table.cells.get((r, col))) and c.values}
            for row, rank in average_ranks(means, col.higher_is_better).items():
                ranks.setdefault(row, {}).setdefault(family, []).append(float(rank))
                scores.setdefault(row, {}).setdefault(family, []).append(means[row])
    out = {row: {f: (sum(v) / len(v), sum(scores[row][f]) / len(scores[row][f])) for f, v in fams.items()}
           for row, fams in ranks.items()}
    return list(families), out


def record_arch(record: dict[str, Any]) -> str | None:
    """The backbone arch a record's method trained (``config.method.arch`` or ``.model.arch``)."""
    method = ((record.get("config") or {}).get("method")) or {}
    arch = method.get("arch") or (method.get("model") or {}).get("arch")
    return str(arch) if arch else None


def framework_label(record: dict[str, Any]) -> str:
    fw = record.get("framework") or {}
    name = fw.get("name", "torch")
    version = (fw.get("versions") or {}).get(name if name != "mmseg" else "mmsegmentation")
    return f"{name} {str(version).split('+')[0]}" if version else name  # a CUDA/CPU build tag is no protocol


def row_of(record: dict[str, Any]) -> tuple:
    """A record's row: its ROW_KEYS values (the backbone is the arch its method trained,
    the schedule its epochs and the steps of the stage that exported the backbone), the
    recipe followed by the recipe's ``note`` (what a variant is, e.g. "paper (as in
    ContraCAM)") when it has one."""
    note = record.get("recipe_note")
    values = {**record, "backbone": record_arch(record), "schedule": schedule_text(record)}
    return tuple(f"{values.get(k)} ({note})" if k == "recipe" and isinstance(note, str) and note else values.get(k)
                 for k in ROW_KEYS)


def schedule_text(record: dict[str, Any]) -> str:
    """``30 ep, 450 steps``: the recipe's epochs and, where known (``pretrain_steps``, see
    :func:`attach_pretrain_steps`), the steps its backbone trained; ``-`` without epochs."""
    def number(v: Any) -> str:
        return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)

    epochs, steps = record.get("epochs"), record.get("pretrain_steps")
    if epochs is None or (isinstance(epochs, float) and math.isnan(epochs)):
        return "-"
    known = isinstance(steps, (int, float)) and not isinstance(steps, bool) and not math.isnan(steps)
    return f"{number(epochs)} ep" + (f", {number(steps)} steps" if known else "")


def attach_pretrain_steps(tasks: pd.DataFrame, stages: pd.DataFrame) -> pd.DataFrame:
    """``tasks`` with ``pretrain_steps``: the ``steps`` metric of the stage record whose unit
    produced each task's backbone (its first upstream key); missing when that stage
    record is not among ``stages`` or reports no steps."""
    steps = {rec.get("unit_key"): (rec.get("metrics") or {}).get("steps") for rec in stages.to_dict("records")}
    upstream = tasks["upstream_keys"] if "upstream_keys" in tasks else [None] * len(tasks)
    out = tasks.copy()
    out["pretrain_steps"] = [steps.get(keys[0]) if isinstance(keys, list) and keys else None for keys in upstream]
    return out


def main_metrics() -> dict[str, list[str] | None]:
    """Per task type: the catalog's ``main_metrics`` list (None = every metric)."""
    return {name: entry.main_metrics for name, entry in registry.tasks().items()}


def derive(record: dict[str, Any]) -> dict[str, tuple[float, bool]]:
    """Derived metrics a record lacks but a table shows: BG-Gap = mixed_same - mixed_rand."""
    m = record.get("metrics") or {}
    for same, rand in (("acc_mixed_same", "acc_mixed_rand"), ("mixed_same", "mixed_rand")):
        if "bg_gap" not in m and same in m and rand in m:
            return {"bg_gap": (m[same] - m[rand], False)}
    return {}


def build(records: pd.DataFrame, tasks: list[str] | None = None,
          title: str = "Leaderboard", columns: list[dict[str, str]] | None = None, role: str = "comparison",
          every_metric: bool = False, marks: dict | None = None, floor_marks: dict | None = None) -> Table:
    """Collate task records into one table.

    ``tasks`` restricts to task instances; ``columns`` (a layout) picks and orders
    (task, metric) pairs explicitly; otherwise a task shows its catalog's
    ``main_metrics``, or all its metrics with ``every_metric``. ``role``: the records of
    that role only (``comparison``, or ``plumbing`` for the table of pipeline checks).
    ``marks``, ``floor_marks``: caches of best-marks and floor marks shared with other
    tables of the same records and role.
    """
    mains = main_metrics()
    cells: dict[tuple[tuple, Column], Cell] = {}
    col_set: dict[tuple, Column] = {}
    rows: list[tuple] = []
    failures: Counter[tuple] = Counter()
    for rec in records.to_dict("records"):
        if tasks is not None and rec["task"] not in tasks:
            continue
        if compare.role_of(rec) != role:
            continue
        row = row_of(rec)
        if row not in rows:
            rows.append(row)
        fw, version = framework_label(rec), str(rec.get("task_version", "?"))
        if rec["status"] != "ok":
            failures[(row, rec["task"], version, fw)] += 1
            continue
        hib = rec.get("higher_is_better") or {}
        metrics = {k: (v, hib.get(k, True)) for k, v in (rec.get("metrics") or {}).items()}
        metrics.update(derive(rec))
        wanted = None if every_metric or columns else mains.get(rec.get("task_type", rec["task"]))
        for name, (value, higher) in metrics.items():
            if wanted is not None and name not in wanted:
                continue
            key = (rec["task"], name, version, fw)
            col = col_set.setdefault(key, Column(*key, higher_is_better=higher))
            cell = cells.setdefault((row, col), Cell())
            cell.values.append(float(value))
            cell.seeds.append(int(rec.get("seed", 0)))
            cell.items.append(compare.item_statistic(rec, name) if role == "comparison" else None)
    for (row, task, version, fw), n in failures.items():
        cols = [c for c in col_set.values() if (c.task, c.version, c.framework) == (task, version, fw)]
        if not cols:
            key = (task, "status", version, fw)
            cols = [col_set.setdefault(key, Column(*key, higher_is_better=True))]
        for col in cols:
            cells.setdefault((row, col), Cell()).failed += n
    ordered = _order_columns(list(col_set.values()), columns)
    table = Table(title, rows, ordered, cells, marks={} if marks is None else marks,
                  floor_marks={} if floor_marks is None else floor_marks, ranked=role == "comparison")
    if role == "comparison" and rows:
        table.notes.append(MARK_NOTE)
        if any(r[0] == FLOOR_METHOD for r in rows):
            table.notes.append(FLOOR_NOTE)
    return table


def _order_columns(cols: list[Column], layout: list[dict[str, str]] | None) -> list[Column]:
    if layout is None:
        return sorted(cols, key=lambda c: (c.task, c.version, c.framework, c.metric))
    out = []
    for spec in layout:
        out += [c for c in cols if c.task == spec["task"] and c.metric == spec["metric"]]
    return out


def load_reference(folder: Path | None = None) -> pd.DataFrame:
    """Published numbers: every CSV under ``results/reference/``."""
    folder = folder or paths.reference_dir()
    frames = [pd.read_csv(p) for p in sorted(Path(folder).glob("*.csv"))]
    need = {"method", "pretrain_data", "epochs", "task", "metric", "value", "framework", "source"}
    for p, f in zip(sorted(Path(folder).glob("*.csv")), frames):
        if missing := need - set(f.columns):
            raise ConfigError(f"{p}: reference table lacks columns {sorted(missing)}")
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=sorted(need))


# -- renderers ---------------------------------------------------------------------

def _row_label(row: tuple) -> list[str]:
    return [str(v) if v is not None else "" for v in row]


def to_markdown(table: Table) -> str:
    if not table.rows:
        return f"## {table.title}\n\nNo records.\n"
    head = list(ROW_KEYS) + [f"{c.group}<br>{c.header}" for c in table.columns]
    lines = [f"## {table.title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table.rows:
        cells = []
        for col in table.columns:
            cell = table.cells.get((row, col))
            text = table.cell_text(row, col)
            cells.append(f"**{text}**" if cell and row in table.marked(col) else text)
        lines.append("| " + " | ".join(_row_label(row) + cells) + " |")
    lines += [""] + [f"_{n}_" for n in table.notes] + ([""] if table.notes else [])
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    rows = []
    for row in table.rows:
        for col in table.columns:
            cell = table.cells.get((row, col))
            if cell is None:
                continue
            iv = cell.interval(metric_bounds(col))
            rows.append({**dict(zip(ROW_KEYS, row)), "task": col.task, "task_version": col.version,
                         "framework": col.framework, "metric": col.metric,
                         "higher_is_better": col.higher_is_better, "mean": cell.mean, "std": cell.std,
                         "n": len(cell.values), "ci_low": iv.low if iv else None, "ci_high": iv.high if iv else None,
                         "ci_kind": iv.kind if iv else None, "failed": cell.failed,
                         "best": row in table.marked(col), "floor_not_below": table.floor_wins(row, col)})
    return pd.DataFrame(rows).to_csv(index=False, float_format="%.4f", lineterminator="\n")


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("↑", r"$\uparrow$"), ("↓", r"$\downarrow$"), ("†", r"$^\dagger$"),
                 (FLOOR_MARK, r"$^\circ$")):
        s = s.replace(a, b)
    return s


def to_latex(table: Table) -> str:
    out = [f"% {table.title}", r"\begin{tabular}{" + "l" * len(ROW_KEYS) + "r" * len(table.columns) + "}",
           r"\toprule"]
    groups = [(g, len(list(run))) for g, run in itertools.groupby(c.group for c in table.columns)]
    out.append(" & ".join([""] * len(ROW_KEYS) + [r"\multicolumn{%d}{c}{%s}" % (n, _tex_escape(g)) if n > 1
                                                  else _tex_escape(g) for g, n in groups]) + r" \\")
    out.append(" & ".join([_tex_escape(k) for k in ROW_KEYS] + [_tex_escape(c.header) for c in table.columns]) + r" \\")
    out.append(r"\midrule")
    for row in table.rows:
        cells = []
        for col in table.columns:
            cell = table.cells.get((row, col))
            text = _tex_escape(table.cell_text(row, col))
            cells.append(r"\textbf{" + text + "}" if cell and row in table.marked(col) else text)
        out.append(" & ".join([_tex_escape(x) for x in _row_label(row)] + cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    out += [f"% {_tex_escape(note)}" for note in table.notes]
    return "\n".join(out) + "\n"
