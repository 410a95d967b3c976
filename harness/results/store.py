"""Result records: one JSON file per (method, recipe, seed, task or stage).

Records are written atomically (temp file in the same folder, fsync, rename) under a
lock on the records folder, so a kill at any moment leaves either the old record or the
new one, never a partial file, and concurrent writers lose nothing.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from harness.core.atomic import atomic_write_bytes, atomic_write_text
from harness.core.errors import DataError, HarnessError
from harness.results.record_schema import Record

if TYPE_CHECKING:
    import pandas

    from harness.results.samples import SampleTable

SAMPLES_FILE = "samples.npz"  # a unit's per-item table in its workdir


def record_path(records_dir: Path, method: str, recipe_label: str, seed: int, task: str) -> Path:
    """Where the record of one (method, recipe, seed, task) lives."""
    safe = task.replace("/", "_")
    return Path(records_dir) / method / recipe_label / f"seed{seed}" / f"{safe}.json"


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``folder/.lock`` (blocking)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def validate(record: dict[str, Any] | Record, source: str = "record") -> dict[str, Any]:
    """The record with every schema field (defaults filled in), checked against
    :class:`~harness.results.record_schema.Record`: unknown fields and wrong types are errors."""
    return (record if isinstance(record, Record) else Record.from_dict(record, source)).to_dict()


def samples_path(record_file: Path) -> Path:
    """Where the per-item table of a record lives: ``<task>.samples.npz`` beside it."""
    return record_file.with_name(f"{record_file.stem}.samples.npz")


def write_record(path: Path, record: dict[str, Any] | Record, samples: Path | None = None) -> Path:
    """Validate and atomically write one record (under the records folder's lock).

    ``samples``: the unit's per-item table, copied beside the record first; the record's
    ``samples`` entry (its sha256) must describe that file.
    """
    record = validate(record, str(path))
    text = json.dumps(record, indent=1, sort_keys=True, default=str) + "\n"
    with locked(path.parent):
        if samples is not None:
            data = Path(samples).read_bytes()
            if hashlib.sha256(data).hexdigest() != (record.get("samples") or {}).get("sha256"):
                raise HarnessError(f"{samples}: per-item table does not match the sha256 its record names")
            atomic_write_bytes(samples_path(path), data)
            record["samples"] = {**record["samples"], "file": samples_path(path).name}
            text = json.dumps(record, indent=1, sort_keys=True, default=str) + "\n"
        atomic_write_text(path, text)
    return path


def load_samples(record: dict[str, Any]) -> SampleTable | None:
    """The per-item table of a loaded record (None when it has none); its sha256 is checked."""
    entry = record.get("samples")
    if not entry or not record.get("path"):
        return None
    from harness.results.samples import SampleTable

    path = Path(record["path"]).with_name(entry["file"])
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{record['path']}: names per-item table {path.name}, which cannot be read ({exc})") from exc
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise DataError(f"{path}: sha256 differs from the one in {record['path']} (file changed after the run)")
    return SampleTable.load(path)


def read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable result record ({exc})") from exc
    try:
        return validate(record, str(path))
    except HarnessError as exc:  # a record on disk that is not one: malformed data
        raise DataError(str(exc)) from None


def iter_record_files(dirs: list[Path]) -> Iterator[Path]:
    """The record files under each of ``dirs``: a record file, a records folder, or the
    output folder of a run (which holds ``records/``)."""
    for d in dirs:
        d = Path(d)
        if (d / "records").is_dir() and (d / "units").is_dir():
            d = d / "records"
        if d.is_file():
            yield d
        elif d.is_dir():
            yield from sorted(p for p in d.rglob("*.json") if not p.name.startswith("."))
        else:
            raise DataError(f"{d}: no such records file or folder")


DUPLICATES = ("refuse", "first")


def result_identity(record: dict[str, Any]) -> tuple:
    """What a record reports (status, metrics, backbone, per-item table), not when or where
    it ran: two records of one unit with the same identity are the same result."""
    samples = record.get("samples") if isinstance(record.get("samples"), dict) else {}
    return (record.get("status"), json.dumps(record.get("metrics"), sort_keys=True), record.get("backbone_sha256"),
            samples.get("sha256"))


def load_records(dirs: list[Path] | Path, kind: str | None = "task", duplicates: str = "refuse") -> pandas.DataFrame:
    """All records under ``dirs`` as a DataFrame, one row per result.

    Columns: the record's top-level keys (``metrics`` and ``higher_is_better`` stay
    dicts) plus ``path``. ``kind`` filters task or stage records (None keeps both).
    One unit of one row (its unit key, task and version, method, recipe label and seed) found in several
    files is counted once when the
    records report the same result; when they differ, ``duplicates="refuse"`` raises a
    :class:`HarnessError` naming both files and ``"first"`` keeps the first folder's.
    """
    import pandas as pd

    if duplicates not in DUPLICATES:
        raise HarnessError(f"duplicates={duplicates!r}: expected one of {', '.join(DUPLICATES)}")
    rows, seen = [], {}
    for path in iter_record_files([dirs] if isinstance(dirs, (str, Path)) else list(dirs)):
        rec = read_record(path)
        if kind is not None and rec["kind"] != kind:
            continue
        unit = (rec["kind"], rec.get("unit_key"), rec.get("task"), rec.get("task_version"), rec.get("method"),
                rec.get("recipe"), rec.get("seed"))
        if unit in seen:
            first_path, first = seen[unit]
            if result_identity(first) != result_identity(rec) and duplicates == "refuse":
                raise HarnessError(f"{first_path} and {path} are records of the same unit ({rec.get('method')}:"
                                   f"{rec.get('recipe')} seed {rec.get('seed')} {rec.get('task')}) with different "
                                   "results; pass one of the folders only, or --duplicates first to keep the "
                                   "first folder's")
            continue
        seen[unit] = (path, rec)
        rows.append({**rec, "path": str(path)})
    columns = [f.name for f in dataclasses.fields(Record)] + ["path"]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)


def metrics_long(df: pandas.DataFrame) -> pandas.DataFrame:
    """One row per (record, metric): the record's identifying columns + metric, value, higher_is_better."""
    import pandas as pd

    keep = [c for c in df.columns if c not in ("metrics", "higher_is_better", "config")]
    rows = []
    for _, rec in df.iterrows():
        for name, value in (rec["metrics"] or {}).items():
            rows.append({**{c: rec[c] for c in keep}, "metric": name, "value": value,
                         "higher_is_better": (rec["higher_is_better"] or {}).get(name, True)})
    return pd.DataFrame(rows, columns=keep + ["metric", "value", "higher_is_better"])
