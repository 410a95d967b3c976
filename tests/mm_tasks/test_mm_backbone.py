"""The backbone file checks of the dense tasks: strict keys before building, equality after init."""
from __future__ import annotations

import pytest
import torch

from harness.core.errors import CheckpointError
from harness.tasks.mm.backbone import read_backbone, verify_loaded


def test_read_backbone_accepts_torchvision_resnet18(backbone_r18):
    state = read_backbone(backbone_r18, "resnet18")
    raw = torch.load(backbone_r18, weights_only=True)
    assert set(state) == set(raw) and all(torch.equal(state[k], raw[k]) for k in raw)


def test_read_backbone_names_missing_key_and_wrong_arch(tmp_path, backbone_r18):
    state = torch.load(backbone_r18, weights_only=True)
    del state["layer2.1.bn2.running_var"]
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(CheckpointError, match=r"missing keys \['layer2\.1\.bn2\.running_var'\] \(1\)"):
        read_backbone(broken, "resnet18")
    with pytest.raises(CheckpointError, match="does not match torchvision resnet50"):
        read_backbone(backbone_r18, "resnet50")


def _mmdet_resnet18(checkpoint):
    from mmdet.models.backbones import ResNet

    model = ResNet(depth=18, out_indices=(0, 1, 2, 3), norm_eval=False, frozen_stages=-1,
                   init_cfg=dict(type="Pretrained", checkpoint=str(checkpoint)))
    model.init_weights()
    return model


def test_verify_loaded_passes_when_pretrained_init_loaded_everything(backbone_r18):
    state = torch.load(backbone_r18, weights_only=True)
    verify_loaded({"": _mmdet_resnet18(backbone_r18)}, state, str(backbone_r18))


def test_verify_loaded_catches_what_mmengine_only_warns_about(tmp_path, backbone_r18):
    state = torch.load(backbone_r18, weights_only=True)
    partial = {k: v for k, v in state.items() if k != "layer3.0.conv1.weight"}
    path = tmp_path / "partial.pth"
    torch.save(partial, path)
    model = _mmdet_resnet18(path)  # mmengine loads with strict=False: no error here
    with pytest.raises(CheckpointError, match=r"left at random init\) \(1\): layer3\.0\.conv1\.weight"):
        verify_loaded({"": model}, partial, str(path))
    # and a tensor that differs from the file is named key by key
    full = _mmdet_resnet18(backbone_r18)
    with torch.no_grad():
        full.layer1[0].conv1.weight.add_(1.0)
    with pytest.raises(CheckpointError, match=r"differ from the file \(1\): layer1\.0\.conv1\.weight"):
        verify_loaded({"": full}, state, str(backbone_r18))
