"""ContraCAM on a ViT: the token map entering the last block, pooled back to the backbone's
feature, finer with overlapping patches, and the localization task on a ViT file."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from harness.api import TaskContext
from harness.cam.contrastive import ContrastiveCAM, ViTTrunk
from harness.core.checkpoints import save_backbone
from harness.core.heads import save_heads
from harness.core.config import read_yaml
from harness.core.paths import benchmarks_dir
from harness.core.registry import import_entry
from harness.core.vit import build_vit
from harness.pretrain.models import build_head, mlp_spec


def _vit(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_vit("vit_tiny_patch16", 64).eval()


def test_pooled_token_map_is_the_backbone_feature() -> None:
    net = _vit()
    x = torch.randn(3, 3, 64, 64)
    feature, prefix = ViTTrunk(copy.deepcopy(net)).features(x)
    assert feature.shape == (3, 192, 4, 4) and prefix.shape == (3, 1, 192)
    with torch.no_grad():
        torch.testing.assert_close(ViTTrunk(net).pool(feature, prefix), net(x))


def test_overlapping_patches_give_a_finer_map_and_refuse_a_non_divisor() -> None:
    feature, _ = ViTTrunk(_vit(), expand_res=2).features(torch.randn(1, 3, 64, 64))
    assert feature.shape[-2:] == (7, 7)  # stride 8 over 64 px with 16-px patches
    with pytest.raises(ValueError, match="expand_res must be one of"):
        ViTTrunk(_vit(), expand_res=3)


def test_vit_cam_gradients_reach_the_token_map_and_leave_the_weights() -> None:
    net = _vit()
    before = copy.deepcopy(net.state_dict())
    proj = build_head(mlp_spec([192, 64, 32]))
    cam = ContrastiveCAM(net, proj, expand_res=2)
    images = torch.randn(6, 3, 64, 64)
    mask = cam(images, iterations=3)
    assert mask.shape == (6, 1, 64, 64) and 0 <= mask.min() and mask.max() <= 1
    assert (mask.flatten(1).amax(1) > 0.99).all()  # min-max normalised, i.e. not constant: a gradient arrived
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_cam_localization_runs_on_a_vit_file(contracam_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "vit"
    backbone = save_backbone(_vit(), folder, {"arch": "vit_tiny_patch16", "img_size": 64, "method": "random"})
    spec = mlp_spec([192, 64, 32])
    save_heads(folder, {"projector": build_head(spec)}, {"projector": spec})
    catalog = read_yaml(benchmarks_dir() / "tasks" / "cam_localization.yaml")
    cfg = {**catalog["presets"]["tiny"], "max_images": 16, "iterations": 2}
    ctx = TaskContext(name="cam_localization", cfg=cfg, workdir=tmp_path, data_root=contracam_root, seed=0,
                      device="cpu", preset="tiny", task="cam_localization", backbone=backbone)
    result = import_entry(catalog["entry"])().run(ctx)
    for name in ("cub", "flowers", "coco"):
        assert 0.0 <= result.metrics[f"{name}_mask_miou"] <= 100.0
        assert 0.0 <= result.metrics[f"{name}_box_recall50"] <= 100.0
