"""Every frozen-feature task end to end on the tiny synthetic benchmark (tiny presets)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from cls_task_fixtures import backbone_file
from harness.api import TaskContext, TaskResult
from harness.core.config import read_yaml
from harness.core.paths import benchmarks_dir

pytestmark = pytest.mark.slow  # about 15 s unloaded, end to end with a ResNet-18 on CPU



@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return backbone_file(tmp_path_factory.mktemp("backbone") / "backbone.pth")


def _run(task: str, root: Path, backbone: Path, tmp_path: Path, **overrides) -> TaskResult:
    from harness.core.registry import import_entry

    catalog = read_yaml(benchmarks_dir() / "tasks" / f"{task}.yaml")
    cfg = copy.deepcopy(catalog["presets"]["tiny"])
    cfg.update(cache_dir=str(tmp_path / "features"), **overrides)
    if "crop_dir" in cfg:
        cfg["crop_dir"] = str(tmp_path / "crops")
    ctx = TaskContext(name=task, cfg=cfg, workdir=tmp_path, data_root=root, seed=0, device="cpu", preset="tiny",
                      task=task, backbone=backbone)
    result = import_entry(catalog["entry"])().run(ctx)
    assert isinstance(result, TaskResult)
    assert result.framework["name"] == "torch" and "torch" in result.framework["versions"]
    assert result.dataset["fingerprint"] and all(n > 0 for n in result.dataset["sizes"].values())
    assert set(result.metrics) == set(result.higher_is_better)
    return result


def test_linear_probe_and_knn(synthetic_root: Path, backbone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))  # where openimage_crops are built
    for dataset in ("coco_crop", "in9", "cub", "flowers", "pets", "food", "cifar10", "openimage_crops"):
        result = _run("linear_probe", synthetic_root, backbone, tmp_path, dataset=dataset)
        (metric,) = result.metrics
        assert metric == ("mean_per_class" if dataset in ("flowers", "pets") else "top1")
        assert 0.0 <= result.metrics[metric] <= 100.0
    knn = _run("knn", synthetic_root, backbone, tmp_path)
    assert 0.0 <= knn.metrics["knn_top1"] <= 100.0


def test_coco_crop_builds_and_probes(synthetic_root: Path, backbone: Path, tmp_path: Path):
    result = _run("coco_crop", synthetic_root, backbone, tmp_path)
    assert 0.0 <= result.metrics["top1"] <= 100.0
    assert Path(result.extra["crop_root"], "coco_crop", "train").is_dir()


def test_shift_tasks(synthetic_root: Path, backbone: Path, tmp_path: Path):
    bg = _run("bg_shift", synthetic_root, backbone, tmp_path)
    assert {"acc_original", "acc_mixed_same", "acc_mixed_rand", "bg_gap"} <= set(bg.metrics)
    assert bg.metrics["bg_gap"] == pytest.approx(bg.metrics["acc_mixed_same"] - bg.metrics["acc_mixed_rand"])
    shift = _run("dist_shift", synthetic_root, backbone, tmp_path)
    for name in ("siscore_9_area", "siscore_9_rotation", "siscore_9_location", "siscore_9", "objectnet_9"):
        assert name in shift.metrics and f"{name}_minus_clean" in shift.metrics
    assert "imagenet_r_9" not in shift.metrics  # no ImageNet-R root in the synthetic benchmark
