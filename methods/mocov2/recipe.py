"""The MoCo v2 recipe: the keys that size its model (no torch: planning may import it).

- ``arch``: the backbone (a torchvision ResNet or a timm ViT); ``img_size``: a ViT's input side.
- ``zero_init_residual``: zero-initialise each residual block's last BN (default ``true``,
  as ContraCAM's MoCo v2).
- ``moco`` (:data:`MOCO_KEYS`): ``dim``, ``hidden``, ``queue``, ``momentum``,
  ``temperature``, ``projector_bn``, ``shuffle_bn``, ``shuffle_bn_groups``; a key left out
  takes :class:`harness.pretrain.moco.MoCoV2Model`'s default. Unknown keys are errors.

The other sections (``data``, ``augment``, ``optimizer``, ``schedule``, ``loop``) are the
engine's, read by :func:`harness.pretrain.stage.pretrain`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.core.config_section import ModelRecipe, model_recipe

MOCO_KEYS = frozenset({"dim", "hidden", "queue", "momentum", "temperature", "projector_bn", "shuffle_bn",
                       "shuffle_bn_groups"})


def parse(cfg: Mapping[str, Any]) -> ModelRecipe:
    """The model settings of recipe ``cfg`` (a ConfigError for an unknown ``moco`` key)."""
    return model_recipe(cfg, "moco", MOCO_KEYS, zero_init_residual=True)
