"""Projection and prediction heads, described by plain dict *specs* (JSON-serialisable)
so that an exported ``heads.pth`` can be rebuilt without the method's code (see
:func:`save_heads`):

- ``{"type": "mlp", "dims": [in, hidden, ..., out], "bn": true, "last_bn": false}``:
  ``Linear -> [BN] -> ReLU`` for every hidden layer, then ``Linear`` (+ BN if ``last_bn``).
  Hidden ``Linear`` layers have a bias only when no BN follows them.
- ``{"type": "conv_mlp", "dims": [in, hidden, out]}``: the same with 1x1 convolutions on a
  feature map (DenseCL's dense head), no BN.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch.nn as nn

from harness.core.atomic import atomic_write_json
from harness.core.checkpoints import atomic_save, cpu_state, read_weights, sidecar_path
from harness.core.errors import CheckpointError, ConfigError
from harness.core.hashing import sha256_file

HEADS_FILE = "heads.pth"  # beside backbone.pth: keys <head name>.<module key>
HEADS_META = "heads.json"  # {"heads": {name: spec}, "sha256": ...}


def mlp_spec(dims: list[int], bn: bool = True, last_bn: bool = False) -> dict[str, Any]:
    return {"type": "mlp", "dims": [int(d) for d in dims], "bn": bool(bn), "last_bn": bool(last_bn)}


def conv_mlp_spec(dims: list[int]) -> dict[str, Any]:
    return {"type": "conv_mlp", "dims": [int(d) for d in dims]}


def build_head(spec: dict[str, Any]) -> nn.Sequential:
    """Build a head from its spec (see the module docstring)."""
    kind, dims = spec.get("type"), list(spec.get("dims", []))
    if len(dims) < 2:
        raise ConfigError(f"head spec needs at least two dims, got {spec!r}")
    layers: list[nn.Module] = []
    if kind == "mlp":
        bn = bool(spec.get("bn", True))
        for a, b in zip(dims[:-2], dims[1:-1]):
            layers += [nn.Linear(a, b, bias=not bn)] + ([nn.BatchNorm1d(b)] if bn else []) + [nn.ReLU(inplace=True)]
        layers.append(nn.Linear(dims[-2], dims[-1], bias=not spec.get("last_bn", False)))
        if spec.get("last_bn", False):
            layers.append(nn.BatchNorm1d(dims[-1], affine=False))
    elif kind == "conv_mlp":
        for a, b in zip(dims[:-2], dims[1:-1]):
            layers += [nn.Conv2d(a, b, 1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(dims[-2], dims[-1], 1))
    else:
        raise ConfigError(f"unknown head type {kind!r} in {spec!r} (expected 'mlp' or 'conv_mlp')")
    return nn.Sequential(*layers)


def save_heads(workdir: Path, heads: Mapping[str, nn.Module], specs: Mapping[str, dict[str, Any]],
               meta: dict[str, Any] | None = None) -> Path:
    """Write ``heads.pth`` (keys ``<name>.<module key>``) and ``heads.json`` beside the backbone."""
    if set(heads) != set(specs):
        raise CheckpointError(f"save_heads: heads {sorted(heads)} and specs {sorted(specs)} differ")
    state = {f"{name}.{k}": v for name, mod in heads.items() for k, v in cpu_state(mod).items()}
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / HEADS_FILE
    atomic_save(state, path)
    atomic_write_json(sidecar_path(path), {**(meta or {}), "heads": {k: dict(v) for k, v in specs.items()},
                                           "sha256": sha256_file(path)}, indent=1, sort_keys=True)
    return path


def load_heads(path: Path) -> dict[str, nn.Module]:
    """Rebuild the heads saved by :func:`save_heads` (``path``: heads.pth or its folder), strict."""
    path = Path(path)
    path = path / HEADS_FILE if path.is_dir() else path
    meta_path = sidecar_path(path)
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path}: heads sidecar not found (expected next to {path.name})")
    meta = json.loads(meta_path.read_text())
    state = read_weights(path)
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
