"""The frozen global-feature tasks run on a ViT backbone file (class-token features) on the
tiny synthetic benchmark; the tasks that read ResNet stage maps refuse it by name."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from harness.api import TaskContext, TaskResult
from harness.core.checkpoints import save_backbone
from harness.core.config import read_yaml
from harness.core.errors import CheckpointError
from harness.core.paths import benchmarks_dir
from harness.core.registry import import_entry
from harness.core.vit import build_vit


@pytest.fixture(scope="module")
def vit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_backbone(build_vit("vit_tiny_patch16", 64), tmp_path_factory.mktemp("vit"),
                         {"arch": "vit_tiny_patch16", "img_size": 64, "method": "random"})


def _run(task: str, root: Path, backbone: Path, tmp_path: Path, **overrides) -> TaskResult:
    catalog = read_yaml(benchmarks_dir() / "tasks" / f"{task}.yaml")
    cfg = {**copy.deepcopy(catalog["presets"]["tiny"]), **overrides}
    if "cache_dir" in cfg:
        cfg["cache_dir"] = str(tmp_path / "features")
    if "crop_dir" in cfg:
        cfg["crop_dir"] = str(tmp_path / "crops")
    ctx = TaskContext(name=task, cfg=cfg, workdir=tmp_path, data_root=root, seed=0, device="cpu", preset="tiny",
                      task=task, backbone=backbone)
    return import_entry(catalog["entry"])().run(ctx)


def test_probes_knn_and_shifts_run_on_class_tokens(synthetic_root: Path, vit_file: Path, tmp_path: Path) -> None:
    probe = _run("linear_probe", synthetic_root, vit_file, tmp_path, dataset="cub")
    assert 0.0 <= probe.metrics["top1"] <= 100.0 and probe.extra
    assert 0.0 <= _run("knn", synthetic_root, vit_file, tmp_path).metrics["knn_top1"] <= 100.0
    bg = _run("bg_shift", synthetic_root, vit_file, tmp_path)
    assert bg.metrics["bg_gap"] == pytest.approx(bg.metrics["acc_mixed_same"] - bg.metrics["acc_mixed_rand"])
    assert "objectnet_9" in _run("dist_shift", synthetic_root, vit_file, tmp_path).metrics


@pytest.mark.parametrize("task", ["seg_probe", "instance_probe"])
def test_stage_map_tasks_refuse_a_vit_file(synthetic_root: Path, vit_file: Path, tmp_path: Path, task: str) -> None:
    with pytest.raises(CheckpointError, match="a vit backbone .* runs on resnet backbones only"):
        _run(task, synthetic_root, vit_file, tmp_path)
