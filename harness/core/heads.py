"""Projection and prediction heads, described by plain dict *specs* (JSON-serialisable)
so that an exported ``heads.pth`` can be rebuilt without the method's code (see
:func:`harness.core.checkpoints.save_heads`):

- ``{"type": "mlp", "dims": [in, hidden, ..., out], "bn": true, "last_bn": false}``:
  ``Linear -> [BN] -> ReLU`` for every hidden layer, then ``Linear`` (+ BN if ``last_bn``).
  Hidden ``Linear`` layers have a bias only when no BN follows them.
- ``{"type": "conv_mlp", "dims": [in, hidden, out]}``: the same with 1x1 convolutions on a
  feature map (DenseCL's dense head), no BN.
"""
from __future__ import annotations

from typing import Any

import torch.nn as nn

from harness.core.errors import ConfigError


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
