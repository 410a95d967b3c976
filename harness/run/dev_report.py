"""The table a fast dev run ends with: one row per unit (ok or the error line, warm s/step,
images/s, data-wait fraction, peak device memory, host RSS), and the projected wall-hours
and GPU-hours of the real run (measured s/step x the real schedule's steps x processes)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.core.text_table import text_table

MEMORY_MARGIN = 0.10  # flag a unit within 10 % of its device's memory


@dataclass(frozen=True)
class DevRow:
    unit: str
    status: str
    s_per_step: float | None = None  # or seconds per item (image) for a unit without steps
    images_per_s: float | None = None
    data_wait: float | None = None
    device_gb: float | None = None
    device_total_gb: float | None = None
    rss_gb: float | None = None
    real_steps: int | None = None
    processes: int = 1
    note: str = ""

    @property
    def wall_h(self) -> float | None:
        if self.s_per_step is None or not self.real_steps:
            return None
        return self.s_per_step * self.real_steps / 3600

    @property
    def gpu_h(self) -> float | None:
        return None if self.wall_h is None else self.wall_h * self.processes

    @property
    def near_memory_limit(self) -> bool:
        return bool(self.device_gb and self.device_total_gb
                    and self.device_gb > (1 - MEMORY_MARGIN) * self.device_total_gb)


def measures(record: dict[str, Any] | None) -> dict[str, float]:
    """The ``dev_*`` measures of a record: a stage's metrics or a task's ``extra.dev``."""
    if not record:
        return {}
    found = {k: v for k, v in (record.get("metrics") or {}).items() if k.startswith("dev_")}
    found.update((record.get("extra") or {}).get("dev") or {})
    return found


def rows(outcomes: list[Any], cfg: dict[str, Any], stage_processes: int, task_processes: int) -> list[DevRow]:
    """One row per unit outcome of a dev run of configuration ``cfg``."""
    out = []
    for o in outcomes:
        unit, record = o.unit, o.record or {}
        m = measures(record)
        per = m.get("dev_s_per_step")
        if unit.kind == "stage" and "dev_s_per_item" in m:  # not gradient training: per image
            per, real = m["dev_s_per_item"], int(m["dev_real_items"]) or None
        elif unit.kind == "stage":
            real = int(m["dev_real_steps"]) if m.get("dev_real_steps") else None
        else:
            real = int((cfg["tasks"].get(unit.name) or {}).get("iters") or 0) or None
        note = ""
        if o.status == "not-covered":
            note = unit.not_covered
        elif record.get("status") == "failed":
            note = (record.get("error") or "").strip().splitlines()[0][:120] if record.get("error") else ""
            if record.get("log"):
                note += f" (log {record['log']})"
        elif unit.kind == "task" and real is None:
            note = f"{record.get('wall_time_s', o.seconds):.0f} s on the dev-run images (no step schedule)"
        if "dev_s_per_item" in m and not note:
            note = f"per image ({int(m['dev_items'])} measured), projected over {real} images"
        out.append(DevRow(unit.label, o.status, per, m.get("dev_images_per_s"),
                          m.get("dev_data_wait_frac"), m.get("dev_device_peak_gb"), m.get("dev_device_total_gb"),
                          m.get("dev_host_rss_gb"), real if per else None,
                          stage_processes if unit.kind == "stage" else task_processes, note))
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(dev_rows: list[DevRow], device: str) -> str:
    """The dev-run table and the projected totals, as text."""
    hours = "GPU h" if device.startswith("cuda") else "proc h"
    rows = []
    for r in dev_rows:
        mem = _fmt(r.device_gb, ".1f") + ("!" if r.near_memory_limit else "")
        rows.append([r.unit, r.status, _fmt(r.s_per_step, ".3f"), _fmt(r.images_per_s, ".1f"),
                     _fmt(r.data_wait, ".0%"), mem, _fmt(r.rss_gb, ".1f"), r.real_steps or "-",
                     _fmt(r.wall_h, ".2f"), _fmt(r.gpu_h, ".1f"), r.note])
    lines = [text_table(["unit", "status", "s/step", "img/s", "wait", "dev GB", "RSS GB", "steps", "wall h", hours,
                         "note"], rows, right=range(2, 10))]
    wall = sum(r.wall_h or 0.0 for r in dev_rows)
    gpu = sum(r.gpu_h or 0.0 for r in dev_rows)
    unmeasured = [r.unit for r in dev_rows if r.wall_h is None]
    lines.append(f"\nprojected real run on {device}: {wall:.1f} wall-hours, {gpu:.1f} "
                 f"{'GPU' if hours == 'GPU h' else 'process'}-hours for the units with a step schedule "
                 f"(measured s/step x the preset's steps x processes; units run one after another)")
    if unmeasured:
        lines.append(f"not projected ({len(unmeasured)}): " + ", ".join(unmeasured))
    near = [r.unit for r in dev_rows if r.near_memory_limit]
    if near:
        lines.append(f"WARNING: within {MEMORY_MARGIN:.0%} of device memory (marked !): " + ", ".join(near))
    return "\n".join(lines)
