"""The frozen tasks run on a ViT backbone file on the tiny synthetic benchmark: the global
ones on class tokens, the dense probes on patch tokens."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from harness.api import TaskContext, TaskResult
from harness.core.checkpoints import save_backbone
from harness.core.config import read_yaml
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


def test_dense_levels_of_a_vit_are_normed_patch_tokens_of_the_quarter_blocks(vit_file: Path) -> None:
    from harness.core.checkpoints import load_backbone
    from harness.tasks.dense_features import feature_maps, level_stride

    net = load_backbone(vit_file).eval()
    x = torch.randn(2, 3, 64, 100)  # the width is padded to 112: 7 patches
    maps = feature_maps(net, x, ["layer1", "layer4"])
    with torch.no_grad():
        tokens = net._pos_embed(net.patch_embed(x))
        for blk in net.blocks[:3]:
            tokens = blk(tokens)
        layer1 = net.norm(tokens)[:, 1:]
        layer4 = net.forward_features(x)[:, 1:]
    for got, want in ((maps["layer1"], layer1), (maps["layer4"], layer4)):
        assert got.shape == (2, 192, 4, 7)
        torch.testing.assert_close(got, want.reshape(2, 4, 7, 192).permute(0, 3, 1, 2))
    assert level_stride(net, "layer1") == level_stride(net, "layer4") == 16


@pytest.mark.parametrize(("task", "metric"), [("seg_probe", "mIoU"), ("instance_probe", "top1")])
def test_dense_probes_run_on_patch_tokens(synthetic_root: Path, vit_file: Path, tmp_path: Path, task: str,
                                          metric: str) -> None:
    result = _run(task, synthetic_root, vit_file, tmp_path)
    assert 0.0 < result.metrics[metric] <= 100.0
    if task == "seg_probe":
        assert result.extra["feature_dim"] == 2 * 192  # layer3 + layer4 patch tokens


def test_bias_diagnostic_runs_on_patch_tokens(synthetic_root: Path, vit_file: Path, tmp_path: Path) -> None:
    from harness.core.checkpoints import load_backbone
    from harness.tasks.bias_diagnostic import vit_levels

    net = load_backbone(vit_file).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        maps, strides, head = vit_levels(net, x, ("c4", "c4head", "c5"))
        final = net.forward_features(x)[:, 1:].reshape(2, 6, 6, 192).permute(0, 3, 1, 2)
        torch.testing.assert_close(maps["c5"], final)
        rois = maps["c4head"][:, :, :3, :3]
        assert head(rois).shape == rois.shape  # the blocks after c4 on the RoI's tokens alone
    assert set(strides.values()) == {16}
    result = _run("bias_diagnostic", synthetic_root, vit_file, tmp_path, coupling_objects=8, position_objects=80)
    for level in ("c4", "c4head", "c5"):
        assert 0.0 <= result.metrics[f"coupling_{level}"] <= 2.0
        assert result.metrics[f"position_r2_{level}"] <= 1.0
