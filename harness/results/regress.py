"""Regression checks: metrics against expected value +- tolerance."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.core import config as config_mod
from harness.core.errors import ConfigError


@dataclass
class Check:
    task: str
    metric: str
    expected: float
    tol: float
    actual: float | None
    status: str  # pass | FAIL | missing | failed-unit


def load_expected(path: Path) -> dict[str, Any]:
    """An expectations file: method, recipe, preset, seed, suite, and
    ``metrics: {task: {metric: {value: V, tol: T}}}``."""
    data = config_mod.read_yaml(path)
    need = ("method", "suite", "metrics")
    if not isinstance(data, dict) or any(k not in data for k in need):
        raise ConfigError(f"{path}: an expectations file needs {', '.join(need)}")
    for task, metrics in data["metrics"].items():
        for metric, spec in (metrics or {}).items():
            if not isinstance(spec, dict) or "value" not in spec or "tol" not in spec:
                raise ConfigError(f"{path}: metrics.{task}.{metric} needs 'value' and 'tol'")
    return data


def compare_expected(records: pd.DataFrame, expected: dict[str, Any]) -> list[Check]:
    by_task = {r["task"]: r for r in records.to_dict("records")
               if r["method"] == expected["method"] and r.get("seed", 0) == expected.get("seed", 0)}
    out = []
    for task, metrics in expected["metrics"].items():
        rec = by_task.get(task)
        for metric, spec in metrics.items():
            if rec is None:
                out.append(Check(task, metric, spec["value"], spec["tol"], None, "missing"))
            elif rec["status"] != "ok":
                out.append(Check(task, metric, spec["value"], spec["tol"], None, "failed-unit"))
            else:
                actual = (rec["metrics"] or {}).get(metric)
                ok = actual is not None and abs(actual - spec["value"]) <= spec["tol"]
                out.append(Check(task, metric, spec["value"], spec["tol"], actual,
                                 "pass" if ok else ("missing" if actual is None else "FAIL")))
    return out


def format_checks(checks: list[Check]) -> str:
    lines = [f"{'task':<26} {'metric':<28} {'expected':>14} {'actual':>9}  status"]
    for c in checks:
        actual = "-" if c.actual is None else f"{c.actual:.3f}"
        lines.append(f"{c.task:<26} {c.metric:<28} {c.expected:>8.3f} ± {c.tol:<4g} {actual:>9}  {c.status}")
    passed = sum(c.status == "pass" for c in checks)
    lines.append(f"{passed} passed, {len(checks) - passed} failed")
    return "\n".join(lines)
