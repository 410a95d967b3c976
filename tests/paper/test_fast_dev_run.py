"""``harness run --fast-dev-run``: a paper recipe (ResNet-50, 224 px) and a paper mmdet task
run their real configuration for one step on CPU, with a checkpoint and resume, records of
their own role, and the measured cost table with the projected time of the real run."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import harness_process
from harness.core import config
from harness.results.store import load_records
from harness.run import dev_run, runner
from tracking_stores import mlflow_runs, wandb_offline_runs

CPU = ("--set", "device=cpu")
TRACK_ALL = "log.backends=[tensorboard,wandb,mlflow]"
SMALL_BATCHES = ("--set", "method.batch_size=16", "--set", "tasks.coco_det.batch_size=2")  # 2-core, 24 GB


def test_dev_units_never_share_a_key_with_the_real_run() -> None:
    cfg = config.resolve("mocov2", "dense", preset="paper", overrides=["device=cpu"], data_root="/data")
    dev = {**cfg, "dev_run": dev_run.settings(1, 8)}
    real_units, dev_units = runner.plan(cfg), runner.plan(dev)
    assert not {u.key for u in real_units} & {u.key for u in dev_units}
    coco = next(u for u in dev_units if u.name == "coco_det")
    assert coco.cfg["iters"] == 1 and coco.cfg["milestones"] == [] and coco.cfg["test_images"] == 8
    assert coco.role == "dev-run" and cfg["tasks"]["coco_det"]["iters"] == 90000
    probe = next(u for u in dev_units if u.name == "seg_probe.voc")
    assert probe.cfg["l2_grid"]["num"] == 2 and not probe.not_covered
    assert dev_run.covered("dist_shift", "torch") is None and dev_run.covered("oim_det", "mmdet") is None
    assert dev_run.covered("oim_cls", "torch") is None and dev_run.covered("plugin_task", "torch")


def test_rescaled_dense_schedule_keeps_its_shape() -> None:
    paper = {"iters": 90000, "milestones": [60000, 80000], "warmup_iters": 500, "precise_bn_iters": 200,
             "checkpoint_interval": 5000}
    out = dev_run.task_overrides("coco_det", "mmdet", paper, {"steps": 9, "images": 4})
    assert out["milestones"] == [6, 8] and out["warmup_iters"] == 1 and out["precise_bn_iters"] == 1
    assert out["iters"] == 9 and out["test_images"] == 4 and paper["iters"] == 90000


def test_paper_recipe_and_paper_mmdet_task_one_step_on_cpu(tiny_root: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")  # the unit processes inherit it
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    res = harness_process("run", "--method", "mocov2", "--suite", "dense", "--only", "coco_det", "--preset", "paper",
                          "--data-root", str(tiny_root), "--out", str(tmp_path / "runs"), *CPU, *SMALL_BATCHES,
                          "--fast-dev-run", "1", "--dev-run-images", "2", "--set", TRACK_ALL)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "(fast dev run: 1 steps, 2 images)" in res.stdout
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^(stage pretrain|task coco_det)\s+(\S+)", res.stdout, re.M)}
    assert rows == {"stage pretrain": "ok", "task coco_det": "ok"}, res.stdout[-3000:]
    pretrain_row = next(ln for ln in res.stdout.splitlines() if ln.startswith("stage pretrain"))
    assert re.search(r"\s800\s", pretrain_row)  # the real schedule: 16 images // batch 16 x 800 epochs
    assert re.search(r"projected real run on cpu: [\d.]+ wall-hours", res.stdout)
    out = tmp_path / "runs" / "dev-run"
    records = load_records(out / "records", kind=None)
    assert set(records["role"]) == {"dev-run"} and set(records["status"]) == {"ok"}
    stage = records[records["task"] == "stage.pretrain"].iloc[0]
    assert stage["metrics"]["dev_s_per_step"] > 0 and stage["metrics"]["dev_real_steps"] == 800
    assert stage["config"]["method"]["arch"] == "resnet50" and stage["config"]["method"]["augment"]["size"] == 224
    task = records[records["task"] == "coco_det"].iloc[0]
    assert task["extra"]["iters"] == 1 and task["extra"]["test_images"] == 2 and task["extra"]["dev"]["dev_s_per_step"] > 0
    workdir = Path(stage["workdir"])
    files = sorted(p.name for p in workdir.iterdir())
    assert "checkpoint.pt" in files and "backbone.pth" in files
    assert not (tmp_path / "runs" / "records").exists()  # the real run's folder is untouched
    _check_tracking(out, f"mocov2-{stage['recipe']}-seed0", workdir, Path(task["workdir"]))


def _check_tracking(out: Path, run: str, stage_dir: Path, task_dir: Path) -> None:
    """Both units reached every backend (one run each): the stage its loss, the mmdet task its losses."""
    assert list(stage_dir.glob("tensorboard/events.out.tfevents.*"))
    assert list(task_dir.rglob("vis_data/events.out.tfevents.*"))
    stage_wandb, task_wandb = wandb_offline_runs(stage_dir), wandb_offline_runs(task_dir)
    assert stage_wandb[f"{run}/pretrain"]["pretrain/loss"]
    assert task_wandb[f"{run}/coco_det"]["loss"]
    mlflow = mlflow_runs((out / "mlruns").resolve().as_uri())
    assert set(mlflow) == {f"{run}/pretrain", f"{run}/coco_det"}
    assert [step for step, _ in mlflow[f"{run}/pretrain"]["pretrain/loss"]] == [1]  # the dev run: one step
    assert mlflow[f"{run}/coco_det"]["loss"]
