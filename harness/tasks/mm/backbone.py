"""Read the evaluated backbone file and verify that the detector / segmenter loaded it.

mmengine's ``Pretrained`` init loads with ``strict=False``: a missing or misnamed key only
warns and leaves that weight random. Here the file is checked against the torchvision
ResNet of the preset's arch before anything is built, and every tensor of the built
model's backbone parts is compared with the file after initialisation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from harness.core.errors import CheckpointError

DEPTHS = {"resnet18": 18, "resnet34": 34, "resnet50": 50, "resnet101": 101}


def read_backbone(path: Path, arch: str) -> dict[str, torch.Tensor]:
    """The backbone file's tensors, after :func:`harness.core.checkpoints.load_backbone` checked
    it strictly (weights-only load, exactly the torchvision ``arch`` keys and shapes without
    fc, sha256 of its sidecar). Raises CheckpointError naming the file and the keys."""
    from harness.core.checkpoints import load_backbone

    if arch not in DEPTHS:
        raise CheckpointError(f"unsupported backbone arch {arch!r} for the dense tasks; expected one of {sorted(DEPTHS)}")
    model = load_backbone(Path(path), arch, family="resnet")
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


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
