"""Backbone files: export, strict import, conversion of public SSL checkpoints, heads.

A *backbone file* (``backbone.pth``) is a torchvision ResNet state dict without ``fc.*``,
or a timm Vision Transformer state dict without ``head.*`` (:mod:`harness.core.vit`),
with a JSON sidecar of the same stem (``backbone.json``: ``family`` resnet | vit,
``arch``, ``img_size`` for a ViT, ``sha256`` of the .pth, ``method``, ``recipe``,
``config_hash``, ...). Every load uses
``torch.load(weights_only=True)`` (a file carrying pickled code is refused) and strict
key checks.

:func:`convert` imports public checkpoints, detecting the layout by key prefix:

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
(see :mod:`harness.core.checkpoint_heads`), so that ContraCAM runs on public weights.

Heads (projector, predictor, ...) are exported beside the backbone as ``heads.pth``
(keys ``<head name>.<module key>``) and ``heads.json`` (``{"heads": {name: spec}}`` with
the specs of :func:`harness.pretrain.models.build_head`, plus ``sha256``).
"""
from __future__ import annotations

import json
import pickle
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

from harness.core.paths import BACKBONE_FILE
from harness.core.atomic import atomic_open, atomic_write_json
from harness.core.errors import CheckpointError
from harness.core.hashing import sha256_file
from harness.core.vit import VIT_ARCHS, build_vit, expected_vit_keys, infer_vit, is_vit, vit_backbone_part

HEADS_FILE = "heads.pth"
HEADS_META = "heads.json"
RESNET_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
ARCHS = RESNET_ARCHS + tuple(VIT_ARCHS)
FORMATS = {"resnet": "torchvision-resnet-no-fc", "vit": "timm-vit-no-head"}
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


def sidecar_path(path: Path) -> Path:
    """The JSON sidecar of a weights file: same folder and stem, ``.json``."""
    return Path(path).with_suffix(".json")


def _atomic_save(obj: Any, path: Path) -> None:
    with atomic_open(path) as fh:
        torch.save(obj, fh)


def family_of(arch: str) -> str:
    """``vit`` or ``resnet``: the architecture family of ``arch``."""
    return "vit" if is_vit(arch) else "resnet"


def _expected_keys(arch: str, img_size: int | None = None) -> dict[str, tuple[int, ...]]:
    """Backbone keys (no ``fc`` / ``head``) and shapes of ``arch``, built on the meta device."""
    import torchvision.models as tvm

    if is_vit(arch):
        if img_size is None:
            raise CheckpointError(f"a ViT backbone ({arch}) needs its img_size")
        return expected_vit_keys(arch, img_size)

    with torch.device("meta"):
        net = getattr(tvm, arch)(weights=None)
    return {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.startswith("fc.")}


def _cpu_state(module_or_state: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


# ---------------------------------------------------------------- export / load
def save_backbone(resnet: nn.Module | Mapping[str, torch.Tensor], workdir: Path, meta: dict[str, Any],
                  filename: str = BACKBONE_FILE) -> Path:
    """Write ``<workdir>/backbone.pth`` (state dict without ``fc.*``) and its sidecar.

    ``meta`` must hold ``arch`` (and ``img_size`` for a ViT) and should hold ``method``,
    ``recipe``, ``config_hash``; ``family`` and ``sha256`` are added. The weights are
    checked against the ``arch`` keys (strict) before anything is written. Returns the .pth path.
    """
    if "arch" not in meta:
        raise CheckpointError("save_backbone: meta must name the 'arch'")
    family = family_of(meta["arch"])
    drop = "head." if family == "vit" else "fc."
    state = {k: v for k, v in _cpu_state(resnet).items() if not k.startswith(drop)}
    _check_keys(state, meta["arch"], "backbone to export", meta.get("img_size"))
    _check_finite(state, "backbone to export")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / filename
    _atomic_save(state, path)
    atomic_write_json(sidecar_path(path), {**meta, "family": family, "sha256": sha256_file(path),
                                           "format": FORMATS[family]}, indent=1, sort_keys=True)
    return path


def _check_keys(state: Mapping[str, torch.Tensor], arch: str, what: str, img_size: int | None = None) -> None:
    if arch not in ARCHS:
        raise CheckpointError(f"{what}: unknown arch {arch!r}; expected one of {ARCHS}")
    expected = _expected_keys(arch, img_size)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{what} does not match {'timm' if is_vit(arch) else 'torchvision'} {arch}: missing keys {missing[:20]}"
            f"{' ...' if len(missing) > 20 else ''} ({len(missing)}), unexpected keys {unexpected[:20]} "
            f"({len(unexpected)}), wrong shapes {wrong[:20]} ({len(wrong)})")


def _check_finite(state: Mapping[str, torch.Tensor], what: str) -> None:
    bad = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if bad:
        raise CheckpointError(f"{what} holds NaN or inf values in {bad[:20]}{' ...' if len(bad) > 20 else ''} "
                              f"({len(bad)} tensors); expected finite weights")


def _torch_load(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.suffix == ".pkl":
        raise CheckpointError(f"{path}: detectron2/pycls .pkl checkpoints are not supported; convert it to a "
                              f"torchvision state dict (.pth) first")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (expected the zip archive torch.save writes, "
                              f"or a legacy pickle; the file starts with {head!r})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refused to load: the file holds pickled objects other than tensors and "
                              f"plain containers (possibly code), and only weights-only loading is allowed "
                              f"({str(exc).splitlines()[0]})") from exc
    except Exception as exc:  # noqa: BLE001 - corrupt zip, truncated file, ...
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc})") from exc


def load_backbone(path: Path, arch: str | None = None, family: str | None = None) -> nn.Module:
    """The network of a backbone file, loaded strictly: a torchvision ResNet with ``fc =
    nn.Identity()`` (pooled features), or a timm ViT without classifier (class-token features).

    ``arch``: given, else the sidecar's, else the one nearest to the keys (a missing or
    unexpected key is then an error that lists it). ``family`` (``resnet`` / ``vit``):
    what the caller can use; a file of the other family is refused by name. If the
    sidecar has a ``sha256`` it must match the file.
    """
    path = Path(path)
    meta_path = sidecar_path(path)
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if meta.get("sha256") and meta["sha256"] != sha256_file(path):
        raise CheckpointError(f"{path}: sha256 differs from the one recorded in {meta_path}")
    state = _torch_load(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a flat state dict of tensors (a backbone file); use "
                              f"`harness convert` for other checkpoint layouts")
    found = "vit" if meta.get("family") == "vit" or "cls_token" in state else "resnet"
    if arch and family_of(arch) != found:
        raise CheckpointError(f"{path}: a {found} backbone file, but {arch} was asked for")
    if family is not None and found != family:
        raise CheckpointError(f"{path}: a {found} backbone ({meta.get('arch') or arch or 'arch not recorded'}), "
                              f"but this task runs on {family} backbones only")
    if found == "vit":
        inferred = infer_vit(state, str(path))
        arch = arch or meta.get("arch") or inferred[0]
        img_size = int(meta.get("img_size") or inferred[1])
        _check_keys(state, arch, str(path), img_size)
        net = build_vit(arch, img_size)
    else:
        import torchvision.models as tvm

        arch = arch or meta.get("arch") or nearest_arch({k for k in state if not k.startswith("fc.")})
        _check_keys(state, arch, str(path))
        net = getattr(tvm, arch)(weights=None)
        net.fc = nn.Identity()
    net.load_state_dict(state, strict=True)
    return net


# ---------------------------------------------------------------- conversion
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


def nearest_arch(keys: set[str]) -> str:
    """The torchvision ResNet whose backbone keys differ least from ``keys`` (BN
    ``num_batches_tracked`` buffers ignored)."""
    keys = _weights_only_keys(keys)
    return min(RESNET_ARCHS, key=lambda a: len(_weights_only_keys(_expected_keys(a)) ^ keys))


def _weights_only_keys(keys: Any) -> set[str]:
    """Keys without BN ``num_batches_tracked`` (older checkpoints lack these buffers)."""
    return {k for k in keys if not k.endswith("num_batches_tracked")}


def convert(src: Path, dst: Path, arch: str | None = None) -> ConversionReport:
    """Import a public SSL checkpoint ``src`` as a backbone file ``dst`` (a .pth path or a
    folder, which then receives ``backbone.pth``) with its sidecar.

    Raises :class:`CheckpointError` for pickled code, an unknown layout, missing backbone
    keys (listed) or wrong shapes. Non-backbone keys (heads, fc, queues, momentum encoders)
    are dropped and reported.
    """
    src, dst = Path(src), Path(dst)
    state = _flatten(_torch_load(src), src)
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
    expected = _expected_keys(arch)
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
    expected = _expected_keys(arch, img_size)
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
    from harness.core.checkpoint_heads import PROJECTOR, ProjectorNotFound, import_projector

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


# ---------------------------------------------------------------- heads
def save_heads(workdir: Path, heads: Mapping[str, nn.Module], specs: Mapping[str, dict[str, Any]],
               meta: dict[str, Any] | None = None) -> Path:
    """Write ``heads.pth`` (keys ``<name>.<module key>``) and ``heads.json`` beside the backbone."""
    if set(heads) != set(specs):
        raise CheckpointError(f"save_heads: heads {sorted(heads)} and specs {sorted(specs)} differ")
    state = {f"{name}.{k}": v for name, mod in heads.items() for k, v in _cpu_state(mod).items()}
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / HEADS_FILE
    _atomic_save(state, path)
    atomic_write_json(sidecar_path(path), {**(meta or {}), "heads": {k: dict(v) for k, v in specs.items()},
                                           "sha256": sha256_file(path)}, indent=1, sort_keys=True)
    return path


def load_heads(path: Path) -> dict[str, nn.Module]:
    """Rebuild the heads saved by :func:`save_heads` (``path``: heads.pth or its folder), strict."""
    from harness.core.heads import build_head

    path = Path(path)
    path = path / HEADS_FILE if path.is_dir() else path
    meta_path = sidecar_path(path)
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path}: heads sidecar not found (expected next to {path.name})")
    meta = json.loads(meta_path.read_text())
    state = _torch_load(path)
    out: dict[str, nn.Module] = {}
    for name, spec in meta["heads"].items():
        head = build_head(spec)
        sub = {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}
        try:
            head.load_state_dict(sub, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: head {name!r} does not match its spec {spec}: {exc}") from exc
        out[name] = head
    return out
