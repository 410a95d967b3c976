"""Read the evaluated backbone file and verify that the detector / segmenter loaded it.

mmengine's ``Pretrained`` init loads with ``strict=False``: a missing or misnamed key only
warns and leaves that weight random. Here the file is checked against the torchvision
ResNet it claims to be before anything is built, and every tensor of the built model's
backbone parts is compared with the file after initialisation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from harness.errors import CheckpointError

# (block kind, blocks per stage) -> torchvision arch name
_LAYOUTS = {
    ("basic", (2, 2, 2, 2)): "resnet18",
    ("basic", (3, 4, 6, 3)): "resnet34",
    ("bottleneck", (3, 4, 6, 3)): "resnet50",
    ("bottleneck", (3, 4, 23, 3)): "resnet101",
}
DEPTHS = {"resnet18": 18, "resnet34": 34, "resnet50": 50, "resnet101": 101}


def infer_arch(keys: list[str] | set[str]) -> str | None:
    """The torchvision ResNet whose block layout the state-dict keys show, or None."""
    kind = "bottleneck" if "layer1.0.conv3.weight" in keys else "basic"
    blocks = []
    for stage in range(1, 5):
        ids = {int(k.split(".")[1]) for k in keys if k.startswith(f"layer{stage}.") and k.split(".")[1].isdigit()}
        blocks.append(max(ids) + 1 if ids else 0)
    return _LAYOUTS.get((kind, tuple(blocks)))


def expected_keys(arch: str) -> dict[str, torch.Size]:
    """Names and shapes of a torchvision ``arch`` state dict without ``fc.*``."""
    import torchvision

    if arch not in DEPTHS:
        raise CheckpointError(f"unsupported backbone arch {arch!r}; expected one of {sorted(DEPTHS)}")
    with torch.device("meta"):
        model = getattr(torchvision.models, arch)()
    return {k: v.shape for k, v in model.state_dict().items() if not k.startswith("fc.")}


def read_backbone(path: Path, arch: str) -> dict[str, torch.Tensor]:
    """Load ``path`` (weights only) and check it is exactly a torchvision ``arch`` without fc.

    Raises CheckpointError naming the file and every missing, unexpected or misshaped key.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: backbone file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for unreadable files
        raise CheckpointError(f"{path}: not a readable weights-only checkpoint ({exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a flat state dict of tensors (torchvision ResNet without fc)")
    want = expected_keys(arch)
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    misshaped = sorted(k for k in set(want) & set(state) if state[k].shape != want[k])
    if missing or unexpected or misshaped:
        found = infer_arch(set(state))
        raise CheckpointError(
            f"{path}: not a torchvision {arch} backbone without fc"
            + (f" (its layout looks like {found})" if found and found != arch else "")
            + _listing("missing keys", missing)
            + _listing("unexpected keys", unexpected)
            + _listing("wrong shapes", misshaped)
        )
    return state


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
