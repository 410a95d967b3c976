"""The random recipe's fields (no torch: planning reads them).

- ``arch``: the backbone (a torchvision ResNet or a timm ViT); ``img_size``: a ViT's input side.
- ``zero_init_residual``: zero-initialise each residual block's last BN (default ``false``,
  torchvision's default initialisation).
- ``projector``: ``dim`` (default 128), ``hidden`` (default the feature width), ``bn``
  (default ``true``): a random projector of MoCo v2's shape.
- ``bn_statistics`` (optional): ``batches`` batches of ``batch_size`` pretraining images on
  which the BatchNorm statistics are measured; the sections ``data`` and ``augment`` (the
  engine's) then give those images.
- ``pretrain_data``, ``epochs``: name the records.

Unknown keys of ``projector`` and ``bn_statistics`` are errors. :data:`STAGE_KEYS` are the
keys the stage reads.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.core.config_section import recipe_section

STAGE_KEYS = ("arch", "img_size", "zero_init_residual", "projector", "bn_statistics", "data", "augment",
              "pretrain_data", "epochs")


@dataclass(frozen=True)
class ProjectorRecipe:
    """The random projector: ``Linear(d, hidden or d) [-BN] -ReLU -Linear(hidden, dim)``."""

    dim: int
    hidden: int | None
    bn: bool


@dataclass(frozen=True)
class BNStatisticsRecipe:
    """How many pretraining images measure the BatchNorm statistics."""

    batches: int
    batch_size: int


@dataclass(frozen=True)
class RandomInitRecipe:
    """The network to initialise and, optionally, the BN statistics to measure on it."""

    arch: str
    zero_init_residual: bool
    img_size: int | None
    projector: ProjectorRecipe
    bn_statistics: BNStatisticsRecipe | None


def parse(cfg: Mapping[str, Any]) -> RandomInitRecipe:
    """The fields of recipe ``cfg`` with their defaults."""
    proj = recipe_section(cfg, "projector", {"dim", "hidden", "bn"})
    bn = recipe_section(cfg, "bn_statistics", {"batches", "batch_size"})
    return RandomInitRecipe(
        arch=cfg["arch"], zero_init_residual=bool(cfg.get("zero_init_residual", False)), img_size=cfg.get("img_size"),
        projector=ProjectorRecipe(int(proj.get("dim", 128)), proj.get("hidden"), bool(proj.get("bn", True))),
        bn_statistics=BNStatisticsRecipe(int(bn["batches"]), int(bn["batch_size"])) if bn else None)
