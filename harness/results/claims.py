"""Published claims as data (``benchmarks/claims/*.yaml``), checked against records.

A claims file names its ``source`` (the paper) and a list of ``claims``; each claim
compares a ``treatment`` row with a ``baseline`` row (``{method, recipe}``; ``{preset}`` in
a recipe is replaced by each preset that has records) on one or more ``metrics``
(``{task, metric, direction}``, direction ``higher`` or ``lower``: what the paper says
treatment - baseline is). Each (claim, metric, preset) gets a verdict:

- ``holds``: the difference has the claimed sign and its 95 % interval excludes zero;
- ``contradicted``: the opposite sign, significantly;
- ``not significant``: the interval includes zero;
- ``untested``: fewer than two seeds on a side and no per-item values;
- ``no records``: a row has no comparable record of that task (plumbing records never count).

Nothing here tunes anything: a verdict is what the records say.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.core.config_section import checked_section
from harness.core.text_table import text_table
from harness.results import compare, store
from harness.core import paths, registry
from harness.core import config as config_mod
from harness.core.errors import ConfigError, HarnessError

DIRECTIONS = ("higher", "lower")
_CLAIM_KEYS = {"id", "statement", "where", "treatment", "baseline", "metrics", "note"}
_ROW_KEYS = {"method", "recipe"}
_METRIC_KEYS = {"task", "metric", "direction"}


@dataclass(frozen=True)
class MetricClaim:
    task: str
    metric: str
    direction: str


@dataclass(frozen=True)
class Claim:
    file: str
    source: str
    id: str
    statement: str
    where: str
    treatment: dict[str, str]
    baseline: dict[str, str]
    metrics: tuple[MetricClaim, ...]


@dataclass
class Verdict:
    claim: Claim
    target: MetricClaim
    preset: str
    verdict: str
    diff: float | None = None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    test: str = ""
    n: tuple[int, int] = (0, 0)
    detail: str = ""
    rows: tuple[str, str] = field(default=("", ""))


def claims_dir() -> Path:
    return paths.benchmarks_dir() / "claims"


def task_instances() -> dict[str, str]:
    """Every task instance a suite defines -> its task type (plus every task's own name)."""
    out = {name: name for name in registry.tasks()}
    for suite in config_mod.suite_names():
        for item in config_mod.load_suite(suite)["tasks"]:
            spec = {"task": item} if isinstance(item, str) else item
            out[spec.get("as", spec["task"])] = spec["task"]
    return out


def declared_metrics(task_type: str) -> list[str]:
    """The metric names (glob patterns allowed) a task's catalog file declares."""
    entry = registry.task_entry(task_type)
    return list(entry.metrics or []) + list(entry.main_metrics or [])


def load_claims_file(path: Path) -> list[Claim]:
    """Parse and validate one claims file; every error names the file and the key."""
    data = config_mod.read_yaml(path)
    top = checked_section(data, {"source", "claims"}, str(path), {"source", "claims"})
    if not isinstance(top["claims"], list) or not top["claims"]:
        raise ConfigError(f"{path}: 'claims' must be a non-empty list")
    instances = task_instances()
    methods = set(registry.methods())
    out: list[Claim] = []
    seen: set[str] = set()
    for i, raw in enumerate(top["claims"]):
        where = f"{path}: claims[{i}]"
        c = checked_section(raw, _CLAIM_KEYS, where, {"id", "statement", "treatment", "baseline", "metrics"})
        where = f"{path}: claim {c['id']!r}"
        if c["id"] in seen:
            raise ConfigError(f"{where}: id listed twice")
        seen.add(c["id"])
        rows = {}
        for side in ("treatment", "baseline"):
            row = checked_section(c[side], _ROW_KEYS, f"{where}.{side}", _ROW_KEYS)
            if row["method"] not in methods:
                raise registry.unknown(f"method in {where}.{side}.method:", row["method"], sorted(methods))
            rows[side] = {"method": str(row["method"]), "recipe": str(row["recipe"])}
        if not isinstance(c["metrics"], list) or not c["metrics"]:
            raise ConfigError(f"{where}.metrics: must be a non-empty list of {{task, metric, direction}}")
        targets = []
        for j, m in enumerate(c["metrics"]):
            key = f"{where}.metrics[{j}]"
            m = checked_section(m, _METRIC_KEYS, key, _METRIC_KEYS)
            if m["task"] not in instances:
                raise registry.unknown(f"task in {key}.task:", str(m["task"]), sorted(instances))
            declared = declared_metrics(instances[m["task"]])
            if not any(fnmatch.fnmatchcase(str(m["metric"]), pat) for pat in declared):
                raise ConfigError(f"{key}.metric: task {m['task']!r} reports no metric {m['metric']!r} "
                                  f"(its catalog declares {', '.join(declared) or 'none'})")
            if m["direction"] not in DIRECTIONS:
                raise ConfigError(f"{key}.direction: {m['direction']!r} is not one of {DIRECTIONS}")
            targets.append(MetricClaim(str(m["task"]), str(m["metric"]), str(m["direction"])))
        out.append(Claim(str(path), str(top["source"]), str(c["id"]), str(c["statement"]), str(c.get("where", "")),
                         rows["treatment"], rows["baseline"], tuple(targets)))
    return out


def load_claims(files: list[Path] | None = None) -> list[Claim]:
    files = files or sorted(claims_dir().glob("*.yaml"))
    return [c for f in files for c in load_claims_file(Path(f))]


def _recipe(template: str, preset: str) -> str:
    return template.replace("{preset}", preset)


def evaluate(claims: list[Claim], records: pd.DataFrame) -> list[Verdict]:
    """One verdict per (claim, metric, preset with records of both rows)."""
    recs = compare.comparable(records)
    presets = sorted(set(recs["preset"])) if len(recs) and "preset" in recs.columns else []
    out: list[Verdict] = []
    for claim in claims:
        for preset in presets or ["-"]:
            ra = compare.RowRef(claim.baseline["method"], _recipe(claim.baseline["recipe"], preset))
            rb = compare.RowRef(claim.treatment["method"], _recipe(claim.treatment["recipe"], preset))
            for target in claim.metrics:
                out.append(_one(claim, target, preset, recs, ra, rb))
    return out


def _one(claim: Claim, target: MetricClaim, preset: str, recs: pd.DataFrame, ra: compare.RowRef,
         rb: compare.RowRef) -> Verdict:
    rows = (str(rb), str(ra))
    sides = []
    for row in (ra, rb):
        try:
            sel = compare.select_row(recs, row)
        except HarnessError:
            return Verdict(claim, target, preset, "no records", detail=f"no records of {row}", rows=rows)
        s = compare.series(sel[sel["preset"] == preset] if preset != "-" else sel, target.task, target.metric)
        if s is None:
            return Verdict(claim, target, preset, "no records",
                           detail=f"{row} has no comparable {target.task} record with {target.metric}", rows=rows)
        sides.append(s)
    c = compare.compare_series(sides[0], sides[1])
    if c.p_value is None:
        verdict = "untested"
    elif not c.significant():
        verdict = "not significant"
    else:
        verdict = "holds" if (c.diff > 0) == (target.direction == "higher") else "contradicted"
    return Verdict(claim, target, preset, verdict, c.diff, c.low, c.high, c.p_value, c.method,
                   (len(sides[0].values), len(sides[1].values)), rows=rows)


def verdict_table(verdicts: list[Verdict]) -> pd.DataFrame:
    rows = []
    for v in verdicts:
        rows.append({"source": v.claim.source, "claim": v.claim.id, "statement": v.claim.statement,
                     "where": v.claim.where, "preset": v.preset, "treatment": v.rows[0], "baseline": v.rows[1],
                     "task": v.target.task, "metric": v.target.metric, "direction": v.target.direction,
                     "verdict": v.verdict, "effect": v.diff, "ci_low": v.low, "ci_high": v.high,
                     "p_value": v.p_value, "test": v.test, "n_treatment": v.n[1], "n_baseline": v.n[0],
                     "detail": v.detail})
    return pd.DataFrame(rows)


def verdicts_markdown(table: pd.DataFrame) -> str:
    """The verdict table (:func:`verdict_table`) as Markdown, grouped by source."""
    lines = ["## Published claims, checked on the records", "",
             "Effect = treatment - baseline, 95 % CI and p from the paired bootstrap over seeds and test items "
             "(Welch's t over seeds where no per-item values exist). A verdict is what the records say; "
             "nothing was tuned to make a claim hold.", ""]
    for source, group in table.groupby("source", sort=False):
        lines += [f"### {source}", "", "| claim | preset | treatment | baseline | task / metric | claimed | effect "
                  "| 95 % CI | p | n | verdict |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for v in group.to_dict("records"):
            eff = "" if pd.isna(v["effect"]) else f"{v['effect']:+.2f}"
            ci = "" if pd.isna(v["ci_low"]) else f"[{v['ci_low']:.2f}, {v['ci_high']:.2f}]"
            p = "" if pd.isna(v["p_value"]) else f"{v['p_value']:.4f}"
            verdict = v["verdict"] + (f" ({v['detail']})" if v["detail"] else "")
            lines.append(f"| {v['claim']} | {v['preset']} | {v['treatment']} | {v['baseline']} | {v['task']} / "
                         f"{v['metric']} | {v['direction']} | {eff} | {ci} | {p} | "
                         f"{v['n_treatment']} vs {v['n_baseline']} | {verdict} |")
        lines.append("")
    return "\n".join(lines)


def format_verdicts(verdicts: list[Verdict]) -> str:
    rows = []
    for v in verdicts:
        rows.append([v.claim.id, v.preset, f"{v.target.task} / {v.target.metric}", v.target.direction,
                     "-" if v.diff is None else f"{v.diff:+.2f}",
                     "-" if v.low is None else f"[{v.low:.2f}, {v.high:.2f}]",
                     "-" if v.p_value is None else f"{v.p_value:.4f}",
                     v.verdict + (f" ({v.detail})" if v.detail else "")])
    table = text_table(["claim", "preset", "task / metric", "claimed", "effect", "95% CI", "p", "verdict"], rows,
                       right=(4, 5, 6))
    counts = pd.Series([v.verdict for v in verdicts]).value_counts().to_dict() if verdicts else {}
    return table + "\n" + (", ".join(f"{n} {k}" for k, n in counts.items()) or "no claims")


def claims_main(records: list[Path], files: list[Path] | None, duplicates: str = "refuse") -> int:
    """``harness claims``: validate every claims file, then print each verdict."""
    claims = load_claims(files)
    print(format_verdicts(evaluate(claims, store.load_records(records, duplicates=duplicates))))
    return 0
