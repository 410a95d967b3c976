"""The MoCo v3 recipe: the keys that size its model (no torch: planning may import it).

- ``arch``: the backbone (a timm ViT in both recipes, or a torchvision ResNet);
  ``img_size``: a ViT's input side.
- ``zero_init_residual``: zero-initialise each residual block's last BN (default ``false``).
- ``mocov3`` (:data:`MOCOV3_KEYS`): ``dim``, ``hidden`` (projector ``d-hidden-hidden-dim``,
  predictor ``dim-hidden-dim``), ``momentum`` (base of the cosine schedule to 1),
  ``temperature``, ``freeze_patch_embed`` (a ViT's random patch projection kept fixed); a key
  left out takes :class:`harness.pretrain.mocov3.MoCoV3Model`'s default. Unknown keys are errors.

The other sections (``data``, ``augment``, ``optimizer``, ``schedule``, ``loop``) are the
engine's, read by :func:`harness.pretrain.stage.pretrain`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.core.config_section import ModelRecipe, model_recipe

MOCOV3_KEYS = frozenset({"dim", "hidden", "momentum", "temperature", "freeze_patch_embed"})


def parse(cfg: Mapping[str, Any]) -> ModelRecipe:
    """The model settings of recipe ``cfg`` (a ConfigError for an unknown ``mocov3`` key)."""
    return model_recipe(cfg, "mocov3", MOCOV3_KEYS, zero_init_residual=False)
