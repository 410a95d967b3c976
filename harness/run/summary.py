"""What ``harness run`` prints when it ends: the run's main metrics over its seeds, its
failed units with their error line and log, and the commands that read its records."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core import paths
from harness.core.text_table import text_table
from harness.results import baselines, compare, stats, store


def metrics_over_seeds(records_dir: Path, unit_keys: set[str]) -> str:
    """One line per (task, main metric) of the units ``unit_keys`` (this run's, not every
    record the folder holds): mean, 95 % t interval over seeds, n."""
    recs = store.load_records(records_dir)
    if not len(recs):
        return ""
    rows = compare.comparable(recs[recs["unit_key"].isin(unit_keys)])
    rows_out = []
    for (task, metric), by_seed in sorted(baselines.metric_values(rows).items()):
        iv = stats.seed_interval(list(by_seed.values()))
        ci = f"[{iv.low:.2f}, {iv.high:.2f}]" if iv.low is not None else "-"
        rows_out.append([task, metric, f"{iv.mean:.2f}", ci, iv.n])
    return text_table(["task", "metric", "mean", "95 % CI over seeds", "n"], rows_out, right=(2, 4))


def next_commands(out: Path, cfg: dict[str, Any], recipe: str, task_records: int) -> str:
    """The commands that read this run's records (its output folder holds them; ``recipe``
    is the run's recipe label); none when the run wrote no task record, since each of them
    would refuse."""
    if not task_records:
        return "next: no task record was written; fix the failures above and run the same command again"
    method = cfg["method"]["name"]
    suite, preset = cfg["suite"], cfg["preset"]
    baseline = paths.results_dir() / "baselines" / f"{method}-{recipe}.yaml"
    curated_floor = paths.results_dir() / "records" / "random" / preset
    lines = ["next:", f"  harness tables --records {out} --out {out / 'tables'}    # leaderboards of this run"]
    if curated_floor.is_dir():
        lines.append(f"  harness compare random:{preset} {method}:{recipe} --records {out} "
                     f"--records {paths.results_dir() / 'records'} --duplicates first    # against the untrained floor")
    else:
        lines += [f"  harness run --method random --suite {suite} --preset {preset} --out {out}"
                  "    # the untrained floor at this scale, then:",
                  f"  harness compare random:{preset} {method}:{recipe} --records {out}"]
    lines.append(f"  harness claims --records {out}")
    if baseline.is_file():
        lines.append(f"  harness check --baseline {baseline} --records {out}    # within its regression baseline?")
    return "\n".join(lines)


def failures(outcomes: list[Any], workdir_of: Any) -> str:
    """Each failed unit with its error line and log file."""
    from harness.run.runner import error_line

    lines = [f"FAILED {o.unit.label}: {error_line(o.record)}\n       log: {workdir_of(o.unit) / 'log.txt'}"
             for o in outcomes if o.status == "failed"]
    return "\n".join(lines)
