"""Dense tasks as torchrun DDP jobs: two gloo processes on CPU through the unit entry point."""
from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from harness.core import registry
from harness.run.launch.local import unit_command

REPO = Path(__file__).resolve().parents[2]


def _unit_spec(task: str, workdir: Path, data_root: Path, backbone: Path) -> Path:
    entry = registry.task_entry(task)
    spec = {"kind": "task", "name": task, "task": task, "entry": entry.entry, "version": entry.version,
            "cfg": {k: v for k, v in entry.presets["tiny"].items() if k not in ("task", "version")},
            "workdir": str(workdir), "data_root": str(data_root), "seed": 0, "device": "cpu", "preset": "tiny",
            "sys_path": [str(REPO)], "method": "test", "recipe": "test", "config_hash": "test",
            "backbone": str(backbone)}
    workdir.mkdir(parents=True)
    path = workdir / "unit.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("task", ["voc_seg", "coco_det"])
def test_tiny_task_runs_as_a_two_process_torchrun_job(task, tmp_path, dense_root, backbone_r18):
    spec = _unit_spec(task, tmp_path / "unit", dense_root, backbone_r18)
    proc = subprocess.run(unit_command(spec, nproc_per_node=2, launcher="torchrun"), capture_output=True, text=True,
                          timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "unit" / "result.json").read_text())
    assert result["world_size"] == 2 and result["extra"]["backbone_verified"] is True
    assert result["metrics"] and all(math.isfinite(v) and 0.0 <= v <= 100.0 for v in result["metrics"].values())
    logs = list((tmp_path / "unit" / "mmengine").glob("*/*.log"))
    assert logs and "Distributed launcher: pytorch" in logs[0].read_text()
    assert "Distributed training: True" in logs[0].read_text()
