"""The BYOL recipe: the keys that size its model (no torch: planning may import it).

- ``arch``: the backbone (a torchvision ResNet or a timm ViT); ``img_size``: a ViT's input side.
- ``zero_init_residual``: zero-initialise each residual block's last BN (default ``true``).
- ``byol`` (:data:`BYOL_KEYS`): ``dim``, ``hidden``, ``pred_hidden`` (projector
  ``d-hidden-dim``, predictor ``dim-pred_hidden-dim``), ``momentum`` (the target's base
  momentum), ``momentum_schedule`` (``constant`` or ``cosine``); a key left out takes
  :class:`harness.pretrain.byol.BYOLModel`'s default. Unknown keys are errors.

The other sections (``data``, ``augment``, ``optimizer``, ``schedule``, ``loop``) are the
engine's, read by :func:`harness.pretrain.stage.pretrain`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.core.config_section import ModelRecipe, model_recipe

BYOL_KEYS = frozenset({"dim", "hidden", "pred_hidden", "momentum", "momentum_schedule"})


def parse(cfg: Mapping[str, Any]) -> ModelRecipe:
    """The model settings of recipe ``cfg`` (a ConfigError for an unknown ``byol`` key)."""
    return model_recipe(cfg, "byol", BYOL_KEYS, zero_init_residual=True)
