"""Read the evaluated backbone file and verify that the detector / segmenter loaded it.

mmengine's ``Pretrained`` init loads with ``strict=False``: a missing or misnamed key only
warns and leaves that weight random. Here the file is checked against the torchvision
ResNet (or timm ViT) of the preset's arch before anything is built, and every tensor of
the built model's backbone parts is compared with the file after initialisation.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from harness.core.errors import CheckpointError

DEPTHS = {"resnet18": 18, "resnet34": 34, "resnet50": 50, "resnet101": 101}


def resnet_depth(arch: str) -> int:
    if arch not in DEPTHS:
        raise CheckpointError(f"unsupported backbone arch {arch!r} for the ResNet dense tasks; expected one of "
                              f"{sorted(DEPTHS)}")
    return DEPTHS[arch]


def read_backbone(path: Path, arch: str) -> dict[str, torch.Tensor]:
    """The backbone file's tensors, after :func:`harness.core.checkpoints.load_backbone` checked
    it strictly (weights-only load, exactly the keys and shapes of the torchvision ``arch``
    without fc or the timm ViT ``arch`` without head, sha256 of its sidecar). Raises
    CheckpointError naming the file and the keys."""
    from harness.core.checkpoints import load_backbone
    from harness.core.vit import is_vit

    if is_vit(arch):
        model = load_backbone(Path(path), arch, family="vit")
    else:
        resnet_depth(arch)
        model = load_backbone(Path(path), arch, family="resnet")
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def vit_backbone(node: Any, arch: str) -> int:
    """Point a ``HarnessViT`` backbone config at ``arch`` and the image size of the file its
    ``init_cfg`` loads; returns the embedding width."""
    from harness.core.vit import VIT_ARCHS

    if node.get("type") != "HarnessViT":
        raise CheckpointError(f"a ViT arch ({arch}) needs a HarnessViT backbone in the config, not {node.get('type')!r}")
    node.arch = arch
    node.img_size = vit_img_size(Path(node.init_cfg["checkpoint"]))
    return VIT_ARCHS[arch][1]


def vit_img_size(path: Path) -> int:
    """The image size a ViT backbone file's position embedding was trained for."""
    from harness.core.checkpoints import sidecar_path
    from harness.core.vit import infer_vit

    meta = sidecar_path(Path(path))
    size = json.loads(meta.read_text()).get("img_size") if meta.is_file() else None
    return int(size) if size else infer_vit(torch.load(Path(path), map_location="cpu", weights_only=True), str(path))[1]


def verify_loaded(parts: Mapping[str, nn.Module], state: Mapping[str, torch.Tensor], source: str) -> None:
    """Check that the model's backbone ``parts`` hold exactly the file's tensors.

    ``parts`` maps a key prefix of the file (``""`` for the backbone, ``"layer4."`` for a
    C4 detector's res5 head) to the module holding those keys, e.g. ``{"": backbone}``.
    Every file key must land in exactly one part with an equal tensor, and every tensor of
    a part whose name the file uses must have come from the file.
    """
    held: dict[str, torch.Tensor] = {}
    for prefix, module in parts.items():
        for name, tensor in module.state_dict().items():
            if prefix and not name.startswith(prefix):
                continue
            if name in held:
                raise CheckpointError(f"backbone parts overlap on {name!r}")
            held[name] = tensor
    not_in_model = sorted(set(state) - set(held))
    not_in_file = sorted(k for k in held if k not in state)
    differ = sorted(
        k for k in set(state) & set(held)
        if held[k].shape != state[k].shape or not torch.equal(held[k].detach().cpu(), state[k])
    )
    if not_in_model or not_in_file or differ:
        raise CheckpointError(
            f"{source}: the model's backbone does not hold the backbone file's weights after init"
            + _listing("file keys the model lacks", not_in_model)
            + _listing("model keys not in the file (left at random init)", not_in_file)
            + _listing("keys whose values differ from the file", differ)
        )


def _listing(title: str, keys: list[str], limit: int = 20) -> str:
    if not keys:
        return ""
    shown = ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
    return f"\n  {title} ({len(keys)}): {shown}"
