"""ViT backbone files: export and strict load, conversion of the public DINO, MoCo v3, MAE
and iBOT layouts, and the refusals of tasks that run on ResNets only."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.core.checkpoints import load_backbone, save_backbone
from harness.convert import convert
from harness.core.errors import CheckpointError
from harness.core.vit import build_vit, infer_vit


def _vit_state(arch: str = "vit_tiny_patch16", img_size: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return build_vit(arch, img_size).state_dict()


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in state.items()}


def _layouts(state: dict[str, torch.Tensor]) -> dict[str, tuple[object, str, str]]:
    """Checkpoints with each public layout's key names -> (object, layout, a dropped group)."""
    other = _vit_state(seed=1)
    head = {"head.0.weight": torch.randn(64, 192), "head.0.bias": torch.randn(64)}
    mocov3 = {"state_dict": {**_prefixed({**state, **head}, "module.base_encoder."),
                             **_prefixed({**other, **head}, "module.momentum_encoder."),
                             "module.predictor.0.weight": torch.randn(8, 8)}, "epoch": 300}
    dino_full = {"teacher": {**_prefixed(state, "backbone."), "head.mlp.0.weight": torch.randn(8, 192)},
                 "student": {**_prefixed(other, "module.backbone."), "module.head.mlp.0.weight": torch.randn(8, 192)},
                 "epoch": 100}
    ibot = {"state_dict": {**_prefixed(state, "module.backbone."), "module.backbone.masked_embed": torch.zeros(1, 192),
                           "module.head.last_layer.weight": torch.randn(8, 192)}}
    mae = {"model": {**state, "mask_token": torch.zeros(1, 1, 192), "decoder_embed.weight": torch.randn(128, 192),
                     "decoder_pos_embed": torch.zeros(1, 17, 128), "decoder_pred.weight": torch.randn(768, 128)}}
    dino_released = dict(state)
    return {"mocov3": (mocov3, "mocov3", "module.momentum_encoder.*"),
            "dino_full": (dino_full, "dino-ibot", "head.*"),
            "ibot": (ibot, "dino-ibot", "module.backbone.masked_embed"),
            "mae": (mae, "timm", "decoder_embed.*"),
            "dino_released": (dino_released, "timm", "")}


@pytest.mark.parametrize("name", ["mocov3", "dino_full", "ibot", "mae", "dino_released"])
def test_convert_each_public_vit_layout_then_strict_load(tmp_path: Path, name: str) -> None:
    state = _vit_state()
    obj, layout, dropped = _layouts(state)[name]
    torch.save(obj, tmp_path / "src.pth")
    report = convert(tmp_path / "src.pth", tmp_path / "out")
    assert (report.layout, report.arch, report.kept) == (layout, "vit_tiny_patch16 (64 px)", len(state))
    assert not dropped or dropped in report.dropped, report.dropped
    meta = json.loads((tmp_path / "out" / "backbone.json").read_text())
    assert (meta["family"], meta["arch"], meta["img_size"], meta["format"]) == \
        ("vit", "vit_tiny_patch16", 64, "timm-vit-no-head")
    net = load_backbone(tmp_path / "out" / "backbone.pth")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())  # the teacher / query encoder
    x = torch.randn(2, 3, 64, 64)
    assert net.eval()(x).shape == (2, 192)  # the class token
    assert net(torch.randn(1, 3, 96, 96)).shape == (1, 192)  # other sizes: interpolated position embedding


def test_arch_and_image_size_are_read_off_the_shapes() -> None:
    assert infer_vit(_vit_state("vit_small_patch16", 224), "x") == ("vit_small_patch16", 224)
    state = _vit_state()
    state["blocks.12.norm1.weight"] = torch.ones(192)  # a 13th block: no such ViT
    with pytest.raises(CheckpointError, match="depth 13"):
        infer_vit(state, "x")


def test_export_then_load_round_trip_and_strict_keys(tmp_path: Path) -> None:
    state = _vit_state()
    path = save_backbone(state, tmp_path, {"arch": "vit_tiny_patch16", "img_size": 64, "method": "t"})
    assert torch.equal(load_backbone(path).state_dict()["pos_embed"], state["pos_embed"])
    with pytest.raises(CheckpointError, match="needs its img_size"):
        save_backbone(state, tmp_path / "b", {"arch": "vit_tiny_patch16"})
    with pytest.raises(CheckpointError, match=r"missing keys \['norm.bias'\]"):
        save_backbone({k: v for k, v in state.items() if k != "norm.bias"}, tmp_path / "c",
                      {"arch": "vit_tiny_patch16", "img_size": 64})
    with pytest.raises(CheckpointError, match="wrong shapes"):
        save_backbone(state, tmp_path / "d", {"arch": "vit_tiny_patch16", "img_size": 96})


def test_convert_refuses_extra_backbone_keys_and_nan(tmp_path: Path) -> None:
    state = _vit_state()
    torch.save({**state, "blocks.0.attn.extra": torch.zeros(3)}, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"unexpected \['blocks.0.attn.extra'\]"):
        convert(tmp_path / "extra.pth", tmp_path / "out")
    state["blocks.3.mlp.fc1.weight"][0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match=r"NaN or inf values in \['blocks.3.mlp.fc1.weight'\]"):
        convert(tmp_path / "nan.pth", tmp_path / "out2")


def test_resnet_only_tasks_refuse_a_vit_file_by_name(tmp_path: Path) -> None:
    path = save_backbone(_vit_state(), tmp_path, {"arch": "vit_tiny_patch16", "img_size": 64})
    with pytest.raises(CheckpointError, match=rf"{path}: a vit backbone \(vit_tiny_patch16\), but this task runs on "
                                              r"resnet backbones only"):
        load_backbone(path, family="resnet")
    with pytest.raises(CheckpointError, match="a vit backbone file, but resnet18 was asked for"):
        load_backbone(path, "resnet18")
