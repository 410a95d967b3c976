"""Regression baselines derived from records: what a new run of a method may score.

A baseline file (``results/baselines/<method>-<recipe>.yaml``) is written by
``harness baselines`` from the curated seed records, never by hand. Per checked (task,
metric) of one method row it stores:

- ``mean``, ``std``, ``n``: the curated seeds' mean and sample std;
- ``band``: how far one new run may land from ``mean``. It is the 95 % prediction interval
  of one new seed, ``t(0.975, n-1) * std * sqrt(1 + 1/n)``, plus ``cpu``: the largest
  same-seed difference of that (task, metric) measured between two CPUs (records of the
  same units run on another CPU, ``--cross-cpu``), because another CPU is in effect
  another seed; and at least ``MIN_BAND`` points;
- ``above`` (directional checks): per untrained floor of the same backbone (``random`` and
  ``random`` + BN statistics) on which the row is significantly better in the records
  (p < 0.05, paired bootstrap or Welch) by more than its band: a threshold midway between
  the floor's mean and the lowest value the band allows (``mean - band``; mirrored for a
  lower-is-better metric). Every run inside the band clears it; a run that scores like
  the floor does not.

:func:`load` validates a file against the registries: an unknown method, task or metric,
or a check without a value, is a :class:`ConfigError` naming the file and the key.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats as sps

from harness.core import config as config_mod
from harness.core import paths, registry
from harness.core.atomic import atomic_write_text
from harness.core.errors import ConfigError
from harness.results import compare, stats
from harness.results.tables import FLOOR_METHOD, derive, main_metrics, record_arch

MIN_BAND = 1.0  # points; a band never asserts more precision than the printed numbers
DERIVED_METRICS = ("bg_gap",)
HEADER = ("# Derived by `harness baselines` from the records named below; do not edit by hand.\n"
          "# band = t(0.975, n-1) * std * sqrt(1 + 1/n) + cpu (largest same-seed difference between\n"
          "# two CPUs), at least {min_band:g}; above: a directional check against an untrained floor.\n")


def row_arch(rows: pd.DataFrame) -> str | None:
    """The backbone arch of a row's records."""
    return next((a for rec in rows.to_dict("records") if (a := record_arch(rec))), None)


def metric_values(rows: pd.DataFrame) -> dict[tuple[str, str], dict[int, float]]:
    """{(task, metric): {seed: value}} of a row's main metrics, BG-Gap derived where absent."""
    out: dict[tuple[str, str], dict[int, float]] = {}
    mains = main_metrics()
    for rec in rows.to_dict("records"):
        metrics = dict(rec.get("metrics") or {})
        metrics.update({k: v for k, (v, _) in derive(rec).items()})
        declared = mains.get(rec["task_type"])
        wanted = set(metrics) if declared is None else set(declared) & set(metrics)
        wanted |= set(DERIVED_METRICS) & set(metrics)
        for name in wanted:
            out.setdefault((rec["task"], name), {})[int(rec["seed"])] = float(metrics[name])
    return out


def cpu_spread(curated: pd.DataFrame, other: pd.DataFrame) -> tuple[dict[tuple[str, str], float], list[str]]:
    """Largest |difference| per (task, metric) between records of the same (method, recipe,
    seed, task) found in both sets, and the CPUs they name (``versions.cpu``)."""
    spread: dict[tuple[str, str], float] = {}
    cpus = sorted({str((v or {}).get("cpu", "unnamed CPU")) for v in pd.concat([curated, other])["versions"]})
    for (method, recipe), rows in other.groupby(["method", "recipe"]):
        base = curated[(curated["method"] == method) & (curated["recipe"] == recipe)]
        ref, new = metric_values(base), metric_values(rows)
        for key, seeds in new.items():
            for seed, value in seeds.items():
                if seed in ref.get(key, {}):
                    spread[key] = max(spread.get(key, 0.0), abs(value - ref[key][seed]))
    return spread, cpus


def prediction_half_width(values: list[float]) -> float:
    """Half-width of the 95 % prediction interval of one new draw (t over ``n`` seeds)."""
    v = np.asarray(values, np.float64)
    return float(sps.t.ppf(0.975, v.size - 1) * v.std(ddof=1) * math.sqrt(1 + 1 / v.size))


def floor_rows(records: pd.DataFrame, arch: str | None) -> dict[str, pd.DataFrame]:
    """The untrained floors (method ``random``) of the same backbone arch, by ``random:recipe``."""
    floors = records[records["method"] == FLOOR_METHOD]
    return {f"{FLOOR_METHOD}:{recipe}": rows for recipe, rows in floors.groupby("recipe") if row_arch(rows) == arch}


def derive_row(records: pd.DataFrame, method: str, recipe: str,
               spread: dict[tuple[str, str], float]) -> dict[str, Any]:
    """The baseline of one (method, recipe) row of comparison records."""
    rows = records[(records["method"] == method) & (records["recipe"] == recipe)]
    arch = row_arch(rows)
    floor_recs = floor_rows(records, arch)
    floors = {name: metric_values(f) for name, f in floor_recs.items()}
    checks: dict[str, dict[str, Any]] = {}
    for (task, metric), by_seed in sorted(metric_values(rows).items()):
        if len(by_seed) < 2:
            continue
        values = [by_seed[s] for s in sorted(by_seed)]
        higher = _higher_is_better(rows, task, metric)
        cpu = spread.get((task, metric), 0.0)
        band = max(MIN_BAND, prediction_half_width(values) + cpu)
        mean = float(np.mean(values))
        entry: dict[str, Any] = {"mean": round(mean, 3), "std": round(float(np.std(values, ddof=1)), 3),
                                 "n": len(values), "cpu": round(cpu, 3), "band": round(band, 3)}
        above = {}
        for floor, fvals in floors.items():
            if (task, metric) not in fvals or len(fvals[(task, metric)]) < 2:
                continue
            fmean = float(np.mean(list(fvals[(task, metric)].values())))
            gap = (mean - fmean) if higher else (fmean - mean)
            if gap <= band or not _significantly_better(rows, floor_recs[floor], task, metric, higher,
                                                        (fvals[(task, metric)], by_seed)):
                continue
            sign = 1.0 if higher else -1.0
            threshold = fmean + sign * (gap - band) / 2
            above[floor] = {"floor_mean": round(fmean, 3), "threshold": round(threshold, 3)}
        if above:
            entry["above"] = above
        entry["higher_is_better"] = higher
        checks.setdefault(task, {})[metric] = entry
    seeds = sorted({int(s) for s in rows["seed"]})
    preset = sorted(set(rows["preset"]))
    return {"method": method, "recipe": recipe, "preset": preset[0] if len(preset) == 1 else preset,
            "arch": arch, "seeds": seeds, "checks": checks}


def _higher_is_better(rows: pd.DataFrame, task: str, metric: str) -> bool:
    """A metric's direction as its records state it (a derived metric: as :func:`derive` does)."""
    for rec in rows[rows["task"] == task].to_dict("records"):
        derived = derive(rec)
        return derived[metric][1] if metric in derived else bool((rec.get("higher_is_better") or {}).get(metric, True))
    return True


def _significantly_better(rows: pd.DataFrame, floor: pd.DataFrame, task: str, metric: str, higher: bool,
                          by_seed: tuple[dict[int, float], dict[int, float]]) -> bool:
    """The row against the floor: paired bootstrap or Welch (:func:`compare.compare_series`);
    a derived metric, which keeps no per-item values, by Welch on ``by_seed`` (floor, row)."""
    a, b = compare.series(floor, task, metric), compare.series(rows, task, metric)
    if a is None or b is None:
        cmp = stats.welch(list(by_seed[0].values()), list(by_seed[1].values()))
    else:
        cmp = compare.compare_series(a, b)
    return cmp.verdict(higher) == "better"


def derive_all(records: pd.DataFrame, cross_cpu: pd.DataFrame | None) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """{file stem: baseline} for every trained row of ``records`` with at least two seeds."""
    recs = compare.comparable(records)
    spread, cpus = cpu_spread(recs, compare.comparable(cross_cpu)) if cross_cpu is not None and len(cross_cpu) \
        else ({}, [])
    out = {}
    for (method, recipe), rows in recs.groupby(["method", "recipe"]):
        if method == FLOOR_METHOD or rows["seed"].nunique() < 2:
            continue
        out[f"{method}-{recipe}"] = derive_row(recs, method, recipe, spread)
    return out, cpus


def render(baseline: dict[str, Any], sources: list[str], cpus: list[str]) -> str:
    """The YAML text of one baseline file, with its provenance."""
    body = {**baseline, "derived_from": {"records": sources, "cpus": cpus}}
    return HEADER.format(min_band=MIN_BAND) + yaml.safe_dump(body, sort_keys=False, width=120)


def baselines_main(records: list[Path], cross_cpu: list[Path], out: Path | None, check: bool) -> int:
    """``harness baselines``: write (or with ``check``, compare) one file per trained row."""
    from harness.results import store

    recs = store.load_records(records)
    other = store.load_records(cross_cpu) if cross_cpu else None
    derived, cpus = derive_all(recs, other)
    folder = out or paths.results_dir() / "baselines"
    sources = [_rel(p) for p in records + cross_cpu]
    stale = []
    for stem, baseline in derived.items():
        text = render(baseline, sources, cpus)
        path = folder / f"{stem}.yaml"
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
        else:
            atomic_write_text(path, text)
            print(f"wrote {path}")
    if stale:
        print("stale baselines (rerun `harness baselines`):\n  " + "\n  ".join(stale))
        return 1
    return 0


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(paths.results_dir().parent))
    except (ValueError, AttributeError):
        return str(path)


def load(path: Path) -> dict[str, Any]:
    """A baseline file, validated: known method, task types and metrics; every check has a
    ``mean`` and a ``band``, every directional check a ``threshold``."""
    data = config_mod.read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a baseline file is a mapping with method, recipe and checks")
    for key in ("method", "recipe", "checks"):
        if key not in data:
            raise ConfigError(f"{path}: missing key {key!r}")
    if data["method"] not in registry.methods():
        raise registry.unknown("method", f"{data['method']} (in {path}, key 'method')", sorted(registry.methods()))
    if not isinstance(data["checks"], dict) or not data["checks"]:
        raise ConfigError(f"{path}: 'checks' must map tasks to their metrics")
    task_types = registry.tasks()
    for task, metrics in data["checks"].items():
        task_type = str(task).split(".")[0]
        if task_type not in task_types:
            raise ConfigError(f"{path}: checks.{task}: unknown task type {task_type!r} "
                              f"(known: {', '.join(sorted(task_types))})")
        mains = task_types[task_type].main_metrics
        if not isinstance(metrics, dict):
            raise ConfigError(f"{path}: checks.{task} must map metrics to checks")
        for metric, spec in metrics.items():
            where = f"{path}: checks.{task}.{metric}"
            if mains is not None and metric not in mains and metric not in DERIVED_METRICS:
                raise ConfigError(f"{where}: unknown metric {metric!r} of {task_type} (known: {', '.join(mains)})")
            if not isinstance(spec, dict) or not _number(spec.get("mean")) or not _number(spec.get("band")):
                raise ConfigError(f"{where}: a check needs a numeric 'mean' and 'band'")
            for floor, above in (spec.get("above") or {}).items():
                if not isinstance(above, dict) or not _number(above.get("threshold")):
                    raise ConfigError(f"{where}.above.{floor}: a directional check needs a numeric 'threshold'")
    return data


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
