from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from harness.results import samples, store


def write_rec(d: Path, method: str, recipe: str, seed: int, task: str, metrics: dict[str, float],
              correct: np.ndarray | None = None, role: str = "comparison", hib: dict | None = None,
              task_type: str | None = None, preset: str = "tiny") -> Path:
    """A task record (with a per-item table of ``top1`` when ``correct`` is given)."""
    rec: dict[str, Any] = {"kind": "task", "method": method, "recipe": recipe, "seed": seed, "task": task,
                           "task_type": task_type or task.split(".")[0], "task_version": "1", "status": "ok",
                           "metrics": metrics, "higher_is_better": hib or {k: True for k in metrics},
                           "unit_key": f"{method}{recipe}{seed}{task}", "config_hash": "h", "role": role,
                           "preset": preset, "pretrain_data": "synthetic", "epochs": 1,
                           "framework": {"name": "torch", "versions": {"torch": "2.14.1"}}}
    path = store.record_path(d, method, recipe, seed, task)
    src = None
    if correct is not None:
        table = samples.SampleTable({"test": samples.accuracy_group([f"img{i}.jpg" for i in range(len(correct))],
                                                                    correct.astype(int), np.ones(len(correct), int))},
                                    {"top1": samples.accuracy_spec("top1", "test")})
        rec["metrics"] = {**metrics, "top1": table.value("top1")}
        data = table.to_bytes()
        src = path.with_name(f".src-{task}.npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(data)
        rec["samples"] = {"file": "samples.npz", "sha256": hashlib.sha256(data).hexdigest(), "metrics": ["top1"]}
    store.write_record(path, rec, src)
    if src is not None:
        src.unlink()
    return path
