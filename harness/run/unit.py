"""Entry point of one unit's process: ``python -m harness.run.unit SPEC.json``.

Builds the context, seeds every RNG, runs the stage or task, and writes
``result.json`` (success) or ``error.json`` (failure) atomically into the unit's
workdir. Under torchrun every rank runs the unit; rank 0 alone writes the result.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import random
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.api import (BACKBONE_FILE, BACKBONE_META, Progress, Stage, StageContext, Task, TaskContext,
                         TaskResult)
from harness.core.atomic import atomic_write_bytes, atomic_write_text
from harness.core.tracking import prepare_environment as prepare_tracking
from harness.results.record_schema import UnitResult, UnitSpec
from harness.results.store import SAMPLES_FILE

VERSIONED_PACKAGES = ("torch", "torchvision", "numpy", "mmengine", "mmcv", "mmdet", "mmsegmentation",
                      "pycocotools", "opencv-contrib-python-headless")


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s "Model name"): float results differ between CPUs."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def library_versions() -> dict[str, str]:
    """The Python and library versions a result came from, and the CPU model (key ``cpu``)."""
    out = {"python": platform.python_version(), "cpu": cpu_model()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def seed_everything(seed: int) -> None:
    """Seed python, numpy and (when the unit's code imported it) torch."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def pick_device(requested: str) -> str:
    """"auto" -> cuda when a GPU is visible; units whose code does not use torch get "cpu"."""
    if "torch" not in sys.modules:
        if requested == "cuda":
            raise RuntimeError("device 'cuda' requested by a unit that does not use torch")
        return "cpu"
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no GPU is visible")
    return requested


def bind_local_device(device: str, local_rank: int) -> None:
    """Make ``cuda`` mean this rank's GPU (``cuda:<LOCAL_RANK>``) for everything the unit
    moves to ``"cuda"``; without it every rank of a node would share GPU 0."""
    if device == "cuda":
        import torch

        torch.cuda.set_device(local_rank)


def world() -> dict[str, int]:
    return {"rank": int(os.environ.get("RANK", 0)), "world_size": int(os.environ.get("WORLD_SIZE", 1)),
            "local_rank": int(os.environ.get("LOCAL_RANK", 0))}


def _callable(ref: Any) -> Any:
    from harness.core.registry import import_entry

    return import_entry(ref) if isinstance(ref, str) else ref


def load_unit(spec: dict[str, Any]) -> Any:
    """Import the unit's code (so that its imports, torch included, happen before seeding)."""
    from harness.core.registry import import_entry

    if spec["kind"] == "task":
        task = import_entry(spec["entry"])()
        task.name, task.version = spec["task"], spec["version"]
        return task
    method = import_entry(spec["entry"])()
    method.name = spec["method"]
    stage = {s.name: s for s in method.stages(spec["cfg"])}[spec["name"]]
    return dataclasses.replace(stage, run=_callable(stage.run))


def run_stage(stage: Stage, spec: dict[str, Any], common: dict[str, Any]) -> dict[str, Any]:
    ctx = StageContext(**{**common, "cfg": stage.view(common["cfg"])}, method=spec["method"], recipe=spec["recipe"],
                       upstream={k: Path(v) for k, v in spec["upstream"].items()},
                       config_hash=spec["config_hash"])
    from harness.pretrain.train_log import loss_curve

    summary = stage.run(ctx) or {}
    out: dict[str, Any] = {"metrics": {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))},
                           "higher_is_better": {}, "extra": {k: v for k, v in summary.items()
                                                             if not isinstance(v, (int, float))}}
    if curve := loss_curve(ctx.workdir):
        out["extra"]["loss_curve"] = curve
    if stage.exports_backbone and ctx.world.get("rank", 0) == 0:
        meta_path = ctx.workdir / BACKBONE_META
        if not (ctx.workdir / BACKBONE_FILE).is_file() or not meta_path.is_file():
            raise RuntimeError(f"stage {stage.name!r} must export {BACKBONE_FILE} and {BACKBONE_META} "
                               f"into {ctx.workdir}")
        out["backbone_sha256"] = json.loads(meta_path.read_text())["sha256"]
    return out


def run_task(task: Task, spec: dict[str, Any], common: dict[str, Any]) -> dict[str, Any]:
    backbone = Path(spec["backbone"])
    meta_path = backbone.with_name(BACKBONE_META)
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    ctx = TaskContext(**common, task=spec["task"], backbone=backbone, backbone_meta=meta)
    result = task.run(ctx)
    if not isinstance(result, TaskResult):
        raise TypeError(f"task {spec['task']!r} returned {type(result).__name__}, expected TaskResult")
    out = {"metrics": {k: float(v) for k, v in result.metrics.items()},
           "higher_is_better": dict(result.higher_is_better), "dataset": result.dataset,
           "framework": result.framework, "extra": result.extra, "backbone_sha256": meta.get("sha256")}
    if result.samples is not None and common["world"].get("rank", 0) == 0:
        out["samples"] = write_samples(result.samples, result.metrics, common["workdir"])
    return out


def write_samples(table: Any, metrics: dict[str, float], workdir: Path) -> dict[str, Any]:
    """Check the per-item table against the metrics, write ``samples.npz``; its record entry."""
    import hashlib

    table.check_against(metrics)
    data = table.to_bytes()
    atomic_write_bytes(workdir / SAMPLES_FILE, data)
    return {"file": SAMPLES_FILE, "sha256": hashlib.sha256(data).hexdigest(), "metrics": sorted(table.metrics),
            "items": table.sizes}


def main(argv: list[str] | None = None) -> int:
    spec_path = Path((argv or sys.argv[1:])[0])
    spec = UnitSpec.read(spec_path).to_dict()
    for p in reversed(spec.get("sys_path", [])):
        if p not in sys.path:
            sys.path.insert(0, p)
    workdir = Path(spec["workdir"])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    w = world()
    start = time.time()
    try:
        unit = load_unit(spec)
        seed_everything(spec["seed"] + w["rank"])
        device = pick_device(spec["device"])
        bind_local_device(device, w["local_rank"])
        common = dict(name=spec["name"], cfg=spec["cfg"], workdir=workdir, data_root=Path(spec["data_root"]),
                      seed=spec["seed"], device=device, preset=spec["preset"],
                      progress=Progress(workdir / "progress.json" if w["rank"] == 0 else None),
                      log=logging.getLogger(f"harness.{spec['kind']}.{spec['name']}"), world=w,
                      dev_run=spec.get("dev_run"), tracking=spec.get("tracking") or {})
        prepare_tracking(common["tracking"])
        out = run_stage(unit, spec, common) if spec["kind"] == "stage" else run_task(unit, spec, common)
        if w["rank"] == 0:
            out.update(versions=library_versions(), device=device, wall_time_s=time.time() - start,
                       world_size=w["world_size"])
            plain = json.loads(json.dumps(out, default=str))  # a task's extra / dataset may hold Paths, numpy scalars
            result = UnitResult.from_dict(plain, str(workdir / "result.json"))
            atomic_write_text(workdir / "result.json", result.to_json())
        from harness.pretrain.dist import close

        close()  # every rank leaves the group together; not after a failure, where a peer may be stuck
        return 0
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a failure record
        if w["rank"] == 0:
            err = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc(),
                   "wall_time_s": time.time() - start}
            atomic_write_text(workdir / "error.json", json.dumps(err, indent=1))
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
