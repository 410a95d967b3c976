"""ResNet and ViT trunks and the MLP heads of self-supervised methods.

Heads are described by plain dict *specs* (JSON-serialisable) so that an exported
``heads.pth`` can be rebuilt without the method's code (see
:func:`harness.core.checkpoints.save_heads`):

- ``{"type": "mlp", "dims": [in, hidden, ..., out], "bn": true, "last_bn": false}``:
  ``Linear -> [BN] -> ReLU`` for every hidden layer, then ``Linear`` (+ BN if ``last_bn``).
  Hidden ``Linear`` layers have a bias only when no BN follows them.
- ``{"type": "conv_mlp", "dims": [in, hidden, out]}``: the same with 1x1 convolutions on a
  feature map (DenseCL's dense head), no BN.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn
from torchvision.models import ResNet

from harness.core.errors import ConfigError

FEATURE_DIMS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "resnet152": 2048}


def build_resnet(arch: str, zero_init_residual: bool = False) -> ResNet:
    """A randomly initialised torchvision ResNet with ``fc = nn.Identity()``."""
    import torchvision.models as tvm

    if arch not in FEATURE_DIMS:
        raise ConfigError(f"unknown arch {arch!r}; expected one of {sorted(FEATURE_DIMS)}")
    net = getattr(tvm, arch)(weights=None, zero_init_residual=zero_init_residual)
    net.fc = nn.Identity()
    return net


def build_backbone(arch: str, zero_init_residual: bool = False, img_size: int | None = None) -> nn.Module:
    """A randomly initialised trunk of ``arch``: a ResNet (:func:`build_resnet`) or a timm
    ViT for ``img_size`` pixels (:func:`harness.core.vit.build_vit`)."""
    from harness.core.vit import build_vit, is_vit

    if is_vit(arch):
        if img_size is None:
            raise ConfigError(f"a ViT trunk ({arch}) needs the recipe key img_size")
        return build_vit(arch, int(img_size))
    return build_resnet(arch, zero_init_residual)


def feature_dim(arch: str) -> int:
    """Feature size of ``arch``: ``layer4`` channels of a ResNet, the embedding width of a ViT."""
    from harness.core.vit import VIT_ARCHS

    if arch in VIT_ARCHS:
        return VIT_ARCHS[arch][1]
    if arch not in FEATURE_DIMS:
        raise ConfigError(f"unknown arch {arch!r}; expected one of {sorted(FEATURE_DIMS)}")
    return FEATURE_DIMS[arch]


def resnet_c5(net: ResNet, x: torch.Tensor) -> torch.Tensor:
    """The ``layer4`` feature map ``(N, C, h, w)`` of a torchvision ResNet."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


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


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy with ``requires_grad=False`` everywhere (a momentum/EMA target)."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``target = m * target + (1 - m) * online`` for parameters (buffers, e.g. BN running
    statistics, are left to the target's own forward passes, as in MoCo and BYOL)."""
    t_params, o_params = list(target.parameters()), list(online.parameters())
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, o_params, alpha=1.0 - momentum)
