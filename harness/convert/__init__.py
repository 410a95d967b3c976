"""Imports public SSL checkpoints as backbone files (:mod:`harness.core.checkpoints`), detecting the layout by key prefix:

==========================  =============================================================
layout                      backbone keys
==========================  =============================================================
``moco``                    ``module.encoder_q.*`` (facebookresearch/moco, DenseCL-style)
``openselfsup``             ``backbone.*`` (OpenSelfSup / mmselfsup / DenseCL / ORL,
                            usually nested under ``state_dict``)
``openselfsup-byol``        ``online_net.0.*`` (OpenSelfSup-style BYOL/ORL without ``backbone.``)
``openselfsup-moco``        ``encoder_q.0.*``
``lightning``               ``encoder.*`` under ``state_dict`` (Lightning modules)
``ddp``                     ``module.*`` (a DDP-wrapped torchvision model)
``torchvision``             plain torchvision keys (``fc.*`` dropped)
==========================  =============================================================

and Vision Transformers (timm key names; the arch and image size are read off the shapes):

==========================  =============================================================
``mocov3``                  ``module.base_encoder.*`` (facebookresearch/moco-v3)
``dino-ibot``               ``backbone.*`` / ``module.backbone.*``, the ``teacher`` of a full
                            DINO or iBOT checkpoint (released backbone weights are ``timm``)
``timm``                    plain timm keys: DINO / MAE released weights (MAE under ``model``;
                            its ``decoder_*`` and ``mask_token`` dropped)
==========================  =============================================================

:func:`convert` also writes the checkpoint's projector as ``heads.pth`` when it finds one
(see :mod:`harness.convert.projector`), so that ContraCAM runs on public weights.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from harness.core.checkpoints import ARCHS, expected_keys, nearest_arch, read_weights, save_backbone, sidecar_path
from harness.core.errors import CheckpointError, HarnessError
from harness.core.hashing import sha256_file
from harness.core.heads import HEADS_FILE, save_heads
from harness.core.paths import BACKBONE_FILE
from harness.core.vit import infer_vit, is_vit, vit_backbone_part

# (layout name, key prefix) in the order they are tried; the first prefix under which a
# complete ResNet is found wins (MoCo files also hold encoder_k: the query encoder is used).
LAYOUTS = (
    ("moco", "module.encoder_q."),
    ("openselfsup", "backbone."),
    ("openselfsup", "module.backbone."),
    ("openselfsup-moco", "encoder_q.0."),
    ("openselfsup-byol", "online_net.0."),
    ("openselfsup-byol", "module.online_net.0."),
    ("lightning", "encoder."),
    ("lightning", "model.encoder."),
    ("ddp", "module."),
    ("torchvision", ""),
)
# (layout name, key prefix) of ViT checkpoints, tried in this order
VIT_LAYOUTS = (
    ("mocov3", "module.base_encoder."),
    ("mocov3", "base_encoder."),
    ("dino-ibot", "backbone."),
    ("dino-ibot", "module.backbone."),
    ("ddp", "module."),
    ("timm", ""),
)
_NESTING = ("state_dict", "model", "network", "teacher")
_MIN_BACKBONE_KEYS = 20  # a ResNet-18 backbone has 122 keys; a head or stray tensor has a few


@dataclass
class ConversionReport:
    """What :func:`convert` did: the layout found, the arch, and the keys it dropped."""

    src: Path
    dst: Path
    layout: str
    prefix: str
    arch: str
    kept: int
    dropped: dict[str, int] = field(default_factory=dict)  # key group -> count
    filled: list[str] = field(default_factory=list)  # num_batches_tracked buffers absent in the source
    sha256: str = ""
    heads: str = ""  # the projector written as heads.pth, or why none was

    def summary(self) -> str:
        dropped = ", ".join(f"{g} ({n})" for g, n in sorted(self.dropped.items())) or "none"
        lines = [f"converted {self.src} -> {self.dst}",
                 f"  layout {self.layout} (prefix {self.prefix!r}), arch {self.arch}, {self.kept} backbone keys",
                 f"  dropped: {dropped}"]
        if self.filled:
            lines.append(f"  filled {len(self.filled)} absent BN num_batches_tracked buffers with 0")
        lines.append(f"  sha256 {self.sha256}")
        lines.append(f"  heads: {self.heads}")
        return "\n".join(lines)


def _flatten(obj: Any, src: Path) -> dict[str, torch.Tensor]:
    """Descend ``state_dict``/``model``/``network`` nesting to the dict of tensors."""
    for _ in range(3):
        if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in _NESTING if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict):
        raise CheckpointError(f"{src}: expected a dict of tensors (possibly under 'state_dict'), "
                              f"got {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _group(key: str, prefix: str) -> str:
    """A dropped key's group: its path up to the first component not shared with the
    backbone ``prefix`` (``module.encoder_q.fc.*``, ``module.encoder_k.*``, ``online_net.1.*``)."""
    parts, base = key.split("."), prefix.rstrip(".").split(".") if prefix else []
    n = 0
    while n < min(len(parts) - 1, len(base)) and parts[n] == base[n]:
        n += 1
    return ".".join(parts[:n + 1]) + (".*" if n + 1 < len(parts) else "")


_BACKBONE_ROOTS = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")


def _backbone_part(key: str) -> bool:
    return key.split(".")[0] in _BACKBONE_ROOTS


def detect_layout(state: Mapping[str, torch.Tensor]) -> tuple[str, str]:
    """``(layout name, prefix)`` of the first known prefix holding most of a ResNet
    (its stem and layers; a few missing keys are reported later, by name)."""
    for name, prefix in LAYOUTS:
        found = sum(1 for k in state if k.startswith(prefix) and _backbone_part(k[len(prefix):]))
        if found >= _MIN_BACKBONE_KEYS:
            return name, prefix
    sample = sorted(state)[:8]
    raise CheckpointError(f"no ResNet backbone found: none of the prefixes {[p for _, p in LAYOUTS]} holds "
                          f"conv1/bn1/layer1-4 keys (first keys: {sample})")


def convert(src: Path, dst: Path, arch: str | None = None) -> ConversionReport:
    """Import a public SSL checkpoint ``src`` as a backbone file ``dst`` (a .pth path or a
    folder, which then receives ``backbone.pth``) with its sidecar.

    Raises :class:`CheckpointError` for pickled code, an unknown layout, missing backbone
    keys (listed) or wrong shapes. Non-backbone keys (heads, fc, queues, momentum encoders)
    are dropped and reported.
    """
    if arch is not None and arch not in ARCHS:
        raise HarnessError(f"--arch {arch!r}: expected one of {', '.join(ARCHS)}")
    src, dst = Path(src), Path(dst)
    state = _flatten(read_weights(src), src)
    if not state:
        raise CheckpointError(f"{src}: holds no tensors")
    vit = _detect_vit_layout(state)
    if vit is not None or (arch and is_vit(arch)):
        if vit is None:
            raise CheckpointError(f"{src}: no ViT backbone found (cls_token, pos_embed and blocks.* under one of "
                                  f"the prefixes {[p for _, p in VIT_LAYOUTS]})")
        return _convert_vit(src, dst, state, *vit, arch)
    try:
        layout, prefix = detect_layout(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{src}: {exc}") from None
    stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    arch = arch or nearest_arch({k for k in stripped if _backbone_part(k)})
    expected = expected_keys(arch)
    filled = sorted(k for k in expected if k not in stripped and k.endswith("num_batches_tracked"))
    missing = sorted(k for k in expected if k not in stripped and k not in filled)
    if missing:
        raise CheckpointError(f"{src}: {len(missing)} {arch} backbone key(s) missing under prefix {prefix!r}: "
                              f"{missing}")
    backbone = {k: stripped[k] for k in expected if k in stripped}
    backbone.update({k: torch.zeros((), dtype=torch.long) for k in filled})
    used = {prefix + k for k in backbone}
    unexpected = sorted(k for k in stripped if _backbone_part(k) and k not in expected)
    if unexpected:
        raise CheckpointError(f"{src}: {len(unexpected)} key(s) under prefix {prefix!r} are not in a torchvision "
                              f"{arch}: {unexpected[:20]}{' ...' if len(unexpected) > 20 else ''}")
    wrong = sorted(k for k in backbone if tuple(backbone[k].shape) != expected[k])
    if wrong:
        raise CheckpointError(f"{src}: wrong shapes for {arch}: "
                              + ", ".join(f"{k} {tuple(backbone[k].shape)} (expected {expected[k]})" for k in wrong[:10]))
    dropped = Counter(_group(k, prefix) for k in state if k not in used)
    path = dst / BACKBONE_FILE if dst.is_dir() or dst.suffix == "" else dst
    save_backbone(backbone, path.parent, {"arch": arch, "method": "imported", "recipe": layout,
                                          "config_hash": "", "source": str(src), "source_sha256": sha256_file(src)},
                  filename=path.name)
    meta = json.loads(sidecar_path(path).read_text())
    heads = _write_projector(state, prefix, path.parent, {"method": "imported", "source": str(src)})
    return ConversionReport(src, path, layout, prefix, arch, len(backbone), dict(dropped), filled, meta["sha256"],
                            heads)


def _detect_vit_layout(state: Mapping[str, torch.Tensor]) -> tuple[str, str] | None:
    """``(layout name, prefix)`` of the first ViT prefix holding a class token and blocks."""
    for name, prefix in VIT_LAYOUTS:
        if prefix + "cls_token" in state and any(k.startswith(prefix + "blocks.") for k in state):
            return name, prefix
    return None


def _convert_vit(src: Path, dst: Path, state: Mapping[str, torch.Tensor], layout: str, prefix: str,
                 arch: str | None) -> ConversionReport:
    """The ViT branch of :func:`convert`: every backbone key under ``prefix`` must be a key
    of the inferred timm ViT with its shape; heads, decoders and mask tokens are dropped."""
    stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    backbone = {k: v for k, v in stripped.items() if vit_backbone_part(k)}
    inferred, img_size = infer_vit(backbone, str(src))
    arch = arch or inferred
    expected = expected_keys(arch, img_size)
    missing = sorted(set(expected) - set(backbone))
    unexpected = sorted(set(backbone) - set(expected))
    wrong = sorted(k for k in set(expected) & set(backbone) if tuple(backbone[k].shape) != expected[k])
    if missing or unexpected or wrong:
        raise CheckpointError(f"{src}: the ViT under prefix {prefix!r} is not a timm {arch} at {img_size} px: "
                              f"missing {missing[:20]} ({len(missing)}), unexpected {unexpected[:20]} "
                              f"({len(unexpected)}), wrong shapes {wrong[:10]} ({len(wrong)})")
    used = {prefix + k for k in backbone}
    dropped = Counter(_group(k, prefix) for k in state if k not in used)
    path = dst / BACKBONE_FILE if dst.is_dir() or dst.suffix == "" else dst
    save_backbone(backbone, path.parent, {"arch": arch, "img_size": img_size, "method": "imported", "recipe": layout,
                                          "config_hash": "", "source": str(src), "source_sha256": sha256_file(src)},
                  filename=path.name)
    for stale in (path.parent / HEADS_FILE, sidecar_path(path.parent / HEADS_FILE)):
        stale.unlink(missing_ok=True)
    meta = json.loads(sidecar_path(path).read_text())
    return ConversionReport(src, path, layout, prefix, f"{arch} ({img_size} px)", len(backbone), dict(dropped), [],
                            meta["sha256"], "none (projectors are imported from ResNet checkpoints only)")


def _write_projector(state: Mapping[str, torch.Tensor], prefix: str, folder: Path, meta: dict[str, Any]) -> str:
    """Write the checkpoint's projector as ``heads.pth`` in ``folder`` (removing a stale one
    when there is none); returns what was written, or why nothing was."""
    from harness.convert.projector import PROJECTOR, ProjectorNotFound, import_projector

    try:
        head, spec, source = import_projector(state, prefix)
    except ProjectorNotFound as exc:
        for stale in (folder / HEADS_FILE, sidecar_path(folder / HEADS_FILE)):
            stale.unlink(missing_ok=True)
        return f"none ({exc})"
    save_heads(folder, {PROJECTOR: head}, {PROJECTOR: spec}, meta)
    dims = "-".join(map(str, spec["dims"]))
    return f"{PROJECTOR} (MLP {dims}{', BN' if spec['bn'] else ''}) from {source}* -> {folder / HEADS_FILE}"


def convert_main(src: str | Path, dst: str | Path, arch: str | None = None) -> int:
    """``harness convert SRC DST``: convert, print the report, return the exit code (0)."""
    print(convert(Path(src), Path(dst), arch).summary())
    return 0
