"""Backbone files: the format, its export and its strict loading.

A *backbone file* (``backbone.pth``) is a torchvision ResNet state dict without ``fc.*``,
or a timm Vision Transformer state dict without ``head.*`` (:mod:`harness.core.vit`),
with a JSON sidecar of the same stem (``backbone.json``: ``family`` resnet | vit,
``arch``, ``img_size`` for a ViT, ``sha256`` of the .pth, ``method``, ``recipe``,
``config_hash``, ...). Every load uses
``torch.load(weights_only=True)`` (a file carrying pickled code is refused) and strict
key checks.

Public SSL checkpoints are imported by :mod:`harness.convert`; heads are saved and loaded
by :mod:`harness.core.heads`.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

from harness.core.paths import BACKBONE_FILE
from harness.core.atomic import atomic_open, atomic_write_json
from harness.core.errors import CheckpointError
from harness.core.hashing import sha256_file
from harness.core.vit import VIT_ARCHS, build_vit, expected_vit_keys, infer_vit, is_vit

RESNET_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
ARCHS = RESNET_ARCHS + tuple(VIT_ARCHS)
FORMATS = {"resnet": "torchvision-resnet-no-fc", "vit": "timm-vit-no-head"}
def sidecar_path(path: Path) -> Path:
    """The JSON sidecar of a weights file: same folder and stem, ``.json``."""
    return Path(path).with_suffix(".json")


def atomic_save(obj: Any, path: Path) -> None:
    with atomic_open(path) as fh:
        torch.save(obj, fh)


def family_of(arch: str) -> str:
    """``vit`` or ``resnet``: the architecture family of ``arch``."""
    return "vit" if is_vit(arch) else "resnet"


def expected_keys(arch: str, img_size: int | None = None) -> dict[str, tuple[int, ...]]:
    """Backbone keys (no ``fc`` / ``head``) and shapes of ``arch``, built on the meta device."""
    import torchvision.models as tvm

    if is_vit(arch):
        if img_size is None:
            raise CheckpointError(f"a ViT backbone ({arch}) needs its img_size")
        return expected_vit_keys(arch, img_size)

    with torch.device("meta"):
        net = getattr(tvm, arch)(weights=None)
    return {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.startswith("fc.")}


def cpu_state(module_or_state: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
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
    state = {k: v for k, v in cpu_state(resnet).items() if not k.startswith(drop)}
    _check_keys(state, meta["arch"], "backbone to export", meta.get("img_size"))
    _check_finite(state, "backbone to export")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / filename
    atomic_save(state, path)
    atomic_write_json(sidecar_path(path), {**meta, "family": family, "sha256": sha256_file(path),
                                           "format": FORMATS[family]}, indent=1, sort_keys=True)
    return path


def _check_keys(state: Mapping[str, torch.Tensor], arch: str, what: str, img_size: int | None = None) -> None:
    if arch not in ARCHS:
        raise CheckpointError(f"{what}: unknown arch {arch!r}; expected one of {ARCHS}")
    expected = expected_keys(arch, img_size)
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


def read_weights(path: Path) -> Any:
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
    state = read_weights(path)
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


def nearest_arch(keys: set[str]) -> str:
    """The torchvision ResNet whose backbone keys differ least from ``keys`` (BN
    ``num_batches_tracked`` buffers ignored)."""
    keys = _weights_only_keys(keys)
    return min(RESNET_ARCHS, key=lambda a: len(_weights_only_keys(expected_keys(a)) ^ keys))


def _weights_only_keys(keys: Any) -> set[str]:
    """Keys without BN ``num_batches_tracked`` (older checkpoints lack these buffers)."""
    return {k for k in keys if not k.endswith("num_batches_tracked")}
