"""Dense transfer from a ViT file: the ViTDet / UPerNet configs, the backbone that loads the
file strictly, the simple feature pyramid and the layer-wise lr decay."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.core.checkpoints import save_backbone
from harness.core.errors import CheckpointError
from harness.core.vit import build_vit
from harness.tasks.mm import ade20k_seg, coco_det
from harness.tasks.mm.config import leaf_datasets
from harness.tasks.mm.engine import build_config
from harness.tasks.mm.vit_modules import (HarnessViT, SimpleFeaturePyramid, ViTLayerDecayOptimWrapperConstructor,
                                          layer_id)


@pytest.fixture(scope="module")
def backbone_vit_b(tmp_path_factory) -> Path:
    """A ViT-B/16 backbone file at 224 px (the paper presets' arch), saved without training."""
    return save_backbone(build_vit("vit_base_patch16", 224), tmp_path_factory.mktemp("vitb"),
                         {"arch": "vit_base_patch16", "img_size": 224, "method": "random"})


def test_paper_vitdet_config(tmp_path, dense_root, mm_ctx, backbone_vit_b, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    ctx = mm_ctx("coco_det_vit", tmp_path, dense_root, backbone_vit_b, preset="paper")
    ctx.device = "cuda"
    cfg = build_config(ctx, coco_det.SPEC_VIT, coco_det.SPEC_VIT.check_data(dense_root))
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.arch, backbone.img_size, backbone.out_indices) == (
        "HarnessViT", "vit_base_patch16", 224, (11,))
    assert backbone.drop_path_rate == 0.1
    assert backbone.init_cfg == {"type": "Pretrained", "checkpoint": str(backbone_vit_b)}
    assert (cfg.model.neck.type, cfg.model.neck.in_channels, cfg.model.neck.scale_factors) == (
        "SimpleFeaturePyramid", 768, (4.0, 2.0, 1.0, 0.5))
    assert cfg.model.rpn_head.num_convs == 2
    assert cfg.model.roi_head.bbox_head.norm_cfg.type == cfg.model.roi_head.mask_head.norm_cfg.type == "LN2d"
    assert cfg.train_dataloader.batch_size * 8 == 64 and cfg.train_cfg.max_iters == 184375
    optim = cfg.optim_wrapper
    assert optim.constructor == "ViTLayerDecayOptimWrapperConstructor"
    assert (optim.optimizer.type, optim.optimizer.lr, optim.optimizer.weight_decay) == ("AdamW", 1e-4, 0.1)
    assert optim.paramwise_cfg == {"layer_decay_rate": 0.7, "num_layers": 12}
    assert cfg.param_scheduler[0].end == 250 and cfg.param_scheduler[1].milestones == [163889, 177546]
    train = next(leaf_datasets(cfg.train_dataloader.dataset)).pipeline
    resize = next(s for s in train if s.type == "RandomResize")
    crop = next(s for s in train if s.type == "RandomCrop")
    assert (resize.scale, resize.ratio_range, crop.crop_size) == ((1024, 1024), (0.1, 2.0), (1024, 1024))


def test_paper_upernet_vit_config(tmp_path, dense_root, mm_ctx, backbone_vit_b, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    ctx = mm_ctx("ade20k_seg_vit", tmp_path, dense_root, backbone_vit_b, preset="paper")
    ctx.device = "cuda"
    cfg = build_config(ctx, ade20k_seg.SPEC_VIT, ade20k_seg.SPEC_VIT.check_data(dense_root))
    assert cfg.model.backbone.out_indices == (2, 5, 8, 11) and cfg.model.backbone.final_norm is False
    assert (cfg.model.neck.type, cfg.model.neck.in_channels, cfg.model.neck.scales) == (
        "MultiLevelNeck", [768] * 4, [4, 2, 1, 0.5])
    assert cfg.model.decode_head.type == "UPerHead" and cfg.model.decode_head.in_channels == [768] * 4
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == 150
    assert (cfg.optim_wrapper.optimizer.type, cfg.optim_wrapper.optimizer.lr) == ("AdamW", 6e-5)
    assert cfg.train_cfg.max_iters == 160000 and cfg.train_dataloader.batch_size * 8 == 16
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.end, poly.type, poly.begin, poly.end) == ("LinearLR", 1500, "PolyLR", 1500, 160000)


def test_a_resnet_file_is_refused_by_a_vit_task(tmp_path, dense_root, mm_ctx, backbone_r18):
    ctx = mm_ctx("coco_det_vit", tmp_path, dense_root, backbone_r18)
    with pytest.raises(CheckpointError, match="resnet"):
        coco_det.CocoDetViT().run(ctx)


def test_harness_vit_loads_the_file_strictly_and_returns_token_maps(backbone_vit: Path) -> None:
    net = HarnessViT("vit_tiny_patch16", 64, out_indices=(2, 11), final_norm=True,
                     init_cfg={"type": "Pretrained", "checkpoint": str(backbone_vit)})
    net.init_weights()
    saved = torch.load(backbone_vit, weights_only=True)
    assert all(torch.equal(net.vit.state_dict()[k], v) for k, v in saved.items())
    net.eval()
    maps = net(torch.randn(1, 3, 96, 128))
    assert [m.shape for m in maps] == [(1, 192, 6, 8)] * 2
    with torch.no_grad():
        last = net.vit.forward_features(torch.zeros(1, 3, 64, 64))[:, 1:]
    torch.testing.assert_close(net(torch.zeros(1, 3, 64, 64))[1], last.reshape(1, 4, 4, 192).permute(0, 3, 1, 2))
    with pytest.raises(CheckpointError, match="init_cfg must be Pretrained"):
        HarnessViT("vit_tiny_patch16", 64).init_weights()


def test_simple_feature_pyramid_strides() -> None:
    neck = SimpleFeaturePyramid(192, out_channels=32)
    outs = neck((torch.randn(2, 192, 8, 8),))  # a stride-16 map of a 128-px image
    assert [tuple(o.shape[-2:]) for o in outs] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    assert all(o.shape[1] == 32 for o in outs)


def test_layer_decay_learning_rates_and_weight_decay() -> None:
    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = HarnessViT("vit_tiny_patch16", 64)
            self.head = torch.nn.Linear(192, 4)

    model = Model()
    wrapper = ViTLayerDecayOptimWrapperConstructor(
        dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.1)),
        paramwise_cfg=dict(layer_decay_rate=0.5, num_layers=12))(model)
    groups = {id(g["params"][0]): g for g in wrapper.optimizer.param_groups}
    named = dict(model.named_parameters())

    def group(name: str) -> dict:
        return groups[id(named[name])]

    assert group("head.weight")["lr"] == pytest.approx(1e-3)
    assert group("backbone.vit.blocks.11.mlp.fc1.weight")["lr"] == pytest.approx(1e-3 * 0.5)
    assert group("backbone.vit.blocks.0.attn.qkv.weight")["lr"] == pytest.approx(1e-3 * 0.5 ** 12)
    assert group("backbone.vit.pos_embed")["lr"] == pytest.approx(1e-3 * 0.5 ** 13)
    assert group("backbone.vit.pos_embed")["weight_decay"] == group("backbone.vit.blocks.3.norm1.weight")[
        "weight_decay"] == 0.0
    assert group("backbone.vit.blocks.3.attn.proj.weight")["weight_decay"] == 0.1
    assert layer_id("backbone.vit.norm.weight", 12) == 13 and layer_id("backbone.vit.patch_embed.proj.weight", 12) == 0
