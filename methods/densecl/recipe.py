"""The DenseCL recipe: the keys that size its model (no torch: planning may import it).

- ``arch``: the ResNet backbone (the dense branch needs its C5 grid).
- ``zero_init_residual``: zero-initialise each residual block's last BN (default ``false``,
  as the reference code).
- ``densecl`` (:data:`DENSECL_KEYS`): ``dim``, ``hidden``, ``queue`` (both queues' length),
  ``momentum``, ``temperature``, ``loss_lambda`` (the dense loss's weight, in [0, 1]),
  ``shuffle_bn``, ``shuffle_bn_groups``; a key left out takes
  :class:`harness_methods.densecl.model.DenseCLModel`'s default. Unknown keys are errors.

The other sections (``data``, ``augment``, ``optimizer``, ``schedule``, ``loop``) are the
engine's, read by :func:`harness.pretrain.stage.pretrain`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.core.config_section import ModelRecipe, model_recipe

DENSECL_KEYS = frozenset({"dim", "hidden", "queue", "momentum", "temperature", "loss_lambda", "shuffle_bn",
                          "shuffle_bn_groups"})


def parse(cfg: Mapping[str, Any]) -> ModelRecipe:
    """The model settings of recipe ``cfg`` (a ConfigError for an unknown ``densecl`` key)."""
    return model_recipe(cfg, "densecl", DENSECL_KEYS, zero_init_residual=False)
