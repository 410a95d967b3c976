"""`harness run` end to end for the multi-stage methods: every stage and the smoke suite's
tasks on the synthetic benchmark, each unit in its own process, records written."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.results.store import load_records


@pytest.mark.slow
@pytest.mark.parametrize("method", ["contracam", "orl", "d3ssl"])
def test_method_runs_its_stages_and_the_smoke_suite(tmp_path: Path, method: str) -> None:
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "harness.cli", "run", "--method", method, "--suite", "smoke", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = load_records(out / "records")
    assert sorted(records["task"]) == ["bg_shift", "coco_crop", "knn"]
    assert set(records["status"]) == {"ok"}, records[["task", "status", "error"]]
    assert (records["method"] == method).all() and records["backbone_sha256"].str.len().eq(64).all()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # every unit is done: nothing reruns
    assert again.returncode == 0, again.stderr[-3000:]
    for task in ("knn", "coco_crop", "bg_shift"):
        assert re.search(rf"^task {task}\s+skipped", again.stdout, re.M), again.stdout[-2000:]


def test_python_api_evaluates_a_public_checkpoint_on_the_smoke_suite(tmp_path: Path) -> None:
    """``harness.evaluate`` on a MoCo-layout checkpoint: the records of the run come back as
    a DataFrame; the same call again skips every unit."""
    import torch
    import torchvision

    import harness

    torch.manual_seed(0)
    state = {f"module.encoder_q.{k}": v for k, v in torchvision.models.resnet18().state_dict().items()
             if not k.startswith("fc.")}
    torch.save({"epoch": 200, "state_dict": state}, tmp_path / "moco.pth.tar")
    lines: list[str] = []
    records = harness.evaluate(tmp_path / "moco.pth.tar", suite="smoke", out=tmp_path / "runs",
                               overrides=["method.pretrain_data=imagenet"], report=lines.append)
    assert sorted(records["task"]) == ["bg_shift", "coco_crop", "knn"] and set(records["status"]) == {"ok"}
    assert (records["pretrain_data"] == "imagenet").all() and (records["method"] == "imported").all()
    assert all(0 <= r["knn_top1"] <= 100 for r in records[records["task"] == "knn"]["metrics"])
    stage = load_records(tmp_path / "runs" / "records", kind="stage").iloc[0]
    assert stage["extra"]["layout"] == "moco" and stage["extra"]["heads"].startswith("none")
    lines.clear()
    again = harness.evaluate(tmp_path / "moco.pth.tar", suite="smoke", out=tmp_path / "runs",
                             overrides=["method.pretrain_data=imagenet"], report=lines.append)
    assert again["metrics"].tolist() == records["metrics"].tolist()
    assert sum(": skipped" in ln for ln in lines) == 4, lines


def test_python_api_refuses_a_missing_checkpoint_before_running(tmp_path: Path) -> None:
    import harness
    from harness.core.errors import HarnessError

    with pytest.raises(HarnessError, match="not found"):
        harness.evaluate(tmp_path / "none.pth", suite="smoke", out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_an_imported_public_vit_checkpoint_runs_the_smoke_suite(tmp_path: Path) -> None:
    """A DINO-style full checkpoint of a ViT-T/16 at 224 px: its teacher is imported and the
    tiny 64 px tasks read its class token (the position embedding interpolated)."""
    import torch

    from harness.core.vit import build_vit

    torch.manual_seed(0)
    teacher = {f"backbone.{k}": v for k, v in build_vit("vit_tiny_patch16", 224).state_dict().items()}
    torch.save({"teacher": teacher, "student": {}, "epoch": 100}, tmp_path / "dino.pth")
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "harness.cli", "run", "--method", "imported", "--suite", "smoke", "--out", str(out),
           "--set", f"method.checkpoint={tmp_path / 'dino.pth'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = load_records(out / "records")
    assert sorted(records["task"]) == ["bg_shift", "coco_crop", "knn"] and set(records["status"]) == {"ok"}
    stage = load_records(out / "records", kind="stage").iloc[0]
    assert (stage["extra"]["layout"], stage["extra"]["arch"]) == ("dino-ibot", "vit_tiny_patch16 (224 px)")


@pytest.mark.slow
def test_smoke_suite_with_every_unit_a_two_process_torchrun_job(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "harness.cli", "run", "--method", "mocov2", "--suite", "smoke", "--out", str(out),
           "--launcher", "torchrun", "--nproc-per-node", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = load_records(out / "records", kind=None)
    assert sorted(records["task"]) == ["bg_shift", "coco_crop", "knn", "stage.pretrain"]
    assert set(records["status"]) == {"ok"} and set(records["world_size"]) == {2}
