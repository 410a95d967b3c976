"""``harness status``: each unit's state, job id, last log line and record."""
from __future__ import annotations

import fcntl
import json
from pathlib import Path


def unit_state(wd: Path) -> str:
    if (wd / "done.json").is_file():
        return "done"
    lock = wd / ".lock"
    if lock.is_file():
        with open(lock, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fh, fcntl.LOCK_UN)
            except BlockingIOError:
                return "running"
    if (wd / "error.json").is_file():
        return "failed"
    if (wd / "slurm_job_id").is_file():
        return "submitted"
    return "started" if (wd / "log.txt").is_file() else "pending"


def last_line(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(fh.tell() - 4096, 0))
            lines = [ln for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:100] if lines else ""


def status_rows(out: Path) -> list[dict[str, str]]:
    rows = []
    dirs = [d for d in (Path(out) / "units").glob("*-*") if d.is_dir()]
    for wd in sorted(dirs, key=lambda d: (d / "unit.json").stat().st_mtime if (d / "unit.json").exists() else 0):
        spec = json.loads((wd / "unit.json").read_text()) if (wd / "unit.json").is_file() else {}
        done = json.loads((wd / "done.json").read_text()) if (wd / "done.json").is_file() else {}
        progress = json.loads((wd / "progress.json").read_text()) if (wd / "progress.json").is_file() else {}
        rows.append({"unit": f"{spec.get('kind', '?')} {wd.name.rsplit('-', 1)[0]}", "key": wd.name.rsplit("-", 1)[1],
                     "state": unit_state(wd),
                     "job": (wd / "slurm_job_id").read_text().strip() if (wd / "slurm_job_id").is_file() else "",
                     "progress": f"{progress.get('step')}/{progress.get('total')}" if progress else "",
                     "record": "yes" if done else "", "last log line": last_line(wd / "log.txt")})
    return rows


def status_main(out: Path) -> int:
    rows = status_rows(out)
    if not rows:
        print(f"no units under {out}/units")
        return 1
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in cols))
    return 0
