"""ResNet and ViT trunks of self-supervised methods, their momentum copies, and the heads
(built from specs by :mod:`harness.core.heads`, imported here for the methods)."""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torchvision.models import ResNet

from harness.core.errors import ConfigError
from harness.core.heads import build_head, conv_mlp_spec, mlp_spec  # noqa: F401  (the methods' head builders)

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
