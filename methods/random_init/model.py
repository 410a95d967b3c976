"""The random network: the recipe's backbone and a projector at their seeded initialisation.

The backbone is the torchvision ResNet of ``arch`` (its own initialisation,
``zero_init_residual`` as the recipe says) or the timm ViT of a ViT ``arch`` at
``img_size``; BatchNorm keeps its initial statistics (mean 0, variance 1). The projector,
of MoCo v2's shape, is exported as ``heads.pth`` so that tasks needing one run on it too.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from harness.pretrain.models import build_backbone, build_head, feature_dim, mlp_spec
from harness_methods.random_init.recipe import RandomInitRecipe


class RandomModel(nn.Module):
    """The backbone and projector at their initialisation."""

    def __init__(self, arch: str, zero_init_residual: bool, hidden: int | None, dim: int, bn: bool,
                 img_size: int | None = None) -> None:
        super().__init__()
        d = feature_dim(arch)
        self.backbone = build_backbone(arch, zero_init_residual, img_size)
        self.projector_spec = mlp_spec([d, hidden or d, dim], bn=bn)
        self.projector = build_head(self.projector_spec)

    def export_heads(self) -> dict[str, tuple[nn.Module, dict[str, Any]]]:
        return {"projector": (self.projector, self.projector_spec)}


def build_model(recipe: RandomInitRecipe, seed: int) -> RandomModel:
    """The network of ``recipe`` initialised from ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    proj = recipe.projector
    return RandomModel(recipe.arch, recipe.zero_init_residual, proj.hidden, proj.dim, proj.bn, recipe.img_size)
