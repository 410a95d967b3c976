"""The one-line progress of a running unit, read from its ``progress.json``."""
from __future__ import annotations

import json
from pathlib import Path


def fmt_duration(s: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from one hour on."""
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class ProgressLine:
    """The progress line of a running unit. The remaining time is estimated from the steps
    this unit process made since its first reading, so a resumed unit (which starts at its
    checkpoint's step) does not count the steps of earlier runs as its own."""

    def __init__(self) -> None:
        self.first: tuple[int, float] | None = None  # (step, elapsed) of the first reading

    def __call__(self, path: Path, elapsed: float) -> str:
        try:
            p = json.loads(path.read_text())
        except (OSError, ValueError):
            return f"elapsed {fmt_duration(elapsed)}"
        step, total = int(p.get("step", 0)), int(p.get("total", 0))
        if self.first is None or step < self.first[0]:  # a stale file of an earlier run, then a resume
            self.first = (step, elapsed)
        done, took = step - self.first[0], elapsed - self.first[1]
        eta = f", remaining ~{fmt_duration(took / done * (total - step))}" if done > 0 and took > 0 and total else ""
        pct = f" ({100 * step / total:.0f}%)" if total else ""
        return f"step {step}/{total}{pct}, elapsed {fmt_duration(elapsed)}{eta}"
