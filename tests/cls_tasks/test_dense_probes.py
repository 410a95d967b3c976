"""Frozen-feature dense probes (seg_probe, instance_probe) and the random-init floor."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from cls_task_fixtures import backbone_file
from harness.api import TaskContext, TaskResult
from harness.core.config import read_yaml
from harness.core.paths import benchmarks_dir
from harness.tasks.seg_probe import cell_labels


def _run(task: str, root: Path, backbone: Path, tmp_path: Path, **overrides) -> TaskResult:
    from harness.core.registry import import_entry

    catalog = read_yaml(benchmarks_dir() / "tasks" / f"{task}.yaml")
    cfg = {**copy.deepcopy(catalog["presets"]["tiny"]), **overrides}
    ctx = TaskContext(name=task, cfg=cfg, workdir=tmp_path, data_root=root, seed=0, device="cpu", preset="tiny",
                      task=task, backbone=backbone)
    return import_entry(catalog["entry"])().run(ctx)


def test_cell_labels_majority_and_ignore():
    lab = np.zeros((8, 8), np.int64)
    lab[:4, 4:] = 2            # top-right cell: class 2
    lab[4:, :4] = 255          # bottom-left cell: ignored
    lab[4:, 4:6] = 1           # bottom-right cell: half class 1, half class 0 -> either, never ignored
    lab[4:, 6:] = 255
    lab[4:5, 4:] = 1           # ... tipped to class 1 (5 of 16 ignored, 9 class 1 of 11 labelled)
    out = cell_labels(np.where(lab == 255, -1, lab), (8, 8), (2, 2), n_classes=3)
    assert out.tolist() == [[0, 2], [-1, 1]]


@pytest.mark.parametrize("dataset", ["voc", "ade20k"])
def test_seg_probe_samples_reproduce_metrics(synthetic_root: Path, tmp_path: Path, dataset: str):
    backbone = backbone_file(tmp_path / "backbone.pth")
    result = _run("seg_probe", synthetic_root, backbone, tmp_path, dataset=dataset, max_iter=10)
    assert {"mIoU", "mAcc", "aAcc"} <= set(result.metrics)
    assert all(0.0 <= v <= 100.0 for v in result.metrics.values())
    table = result.samples
    table.check_against(result.metrics)
    for group in table.groups.values():  # one row per test image
        assert len(group.ids) == result.dataset["sizes"]["test"] == len(set(group.ids.tolist()))


def test_instance_probe_samples_reproduce_metrics(synthetic_root: Path, tmp_path: Path):
    backbone = backbone_file(tmp_path / "backbone.pth")
    result = _run("instance_probe", synthetic_root, backbone, tmp_path, max_iter=10)
    assert set(result.metrics) == {"top1", "mean_per_class"}
    result.samples.check_against(result.metrics)
    (group,) = result.samples.groups.values()
    assert len(group.ids) == result.dataset["sizes"]["test"]


def test_instance_probe_rejects_unknown_level(synthetic_root: Path, tmp_path: Path):
    from harness.core.errors import ConfigError

    backbone = backbone_file(tmp_path / "backbone.pth")
    with pytest.raises(ConfigError, match="layer9"):
        _run("instance_probe", synthetic_root, backbone, tmp_path, levels=["layer3", "layer9"])


def test_random_init_bn_statistics_measured(synthetic_root: Path, tmp_path: Path):
    """tiny-bnstats replaces the initial BN statistics (0 / 1) by measured ones and trains
    no weight; the same seed gives the same backbone."""
    from harness.api import StageContext
    from harness_methods.random_init import stages as stage
    from harness_methods.random_init.model import RandomModel

    recipe = read_yaml(Path(stage.__file__).parent / "recipes" / "tiny-bnstats.yaml")
    recipe["bn_statistics"] = {"batches": 2, "batch_size": 8}
    exported = []
    for run in ("a", "b"):
        ctx = StageContext(name="init", cfg=copy.deepcopy(recipe), workdir=tmp_path / run, data_root=synthetic_root,
                           seed=3, device="cpu", preset="tiny", method="random", recipe="tiny-bnstats")
        out = stage.run(ctx)
        assert out["bn_images"] == 16
        exported.append(torch.load(tmp_path / run / "backbone.pth", weights_only=True))
    a, b = exported
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.allclose(a["bn1.running_mean"], torch.zeros_like(a["bn1.running_mean"]))
    torch.manual_seed(3)
    init = RandomModel("resnet18", True, None, 128, True).backbone.state_dict()
    assert torch.equal(a["conv1.weight"], init["conv1.weight"])  # no weight trained
