"""How an ORL recipe splits into the settings of its three stages.

Top-level keys (:data:`SHARED_KEYS`: ``epochs``, ``batch_size``, ``arch``, ``data``,
``optimizer``, ``schedule``, ``loop``, ``heads``, ``momentum``, ``augment``, ...) are
shared by the two training stages; the sections ``byol`` (stage 1) and ``orl`` (stage 3)
may override any of them for their stage, and ``orl`` holds stage 3's own keys
(:data:`ORL_KEYS`). ``correspondence`` configures stage 2.

``heads``: ``proj_hidden``, ``out_dim``, ``pred_hidden`` (projector d-proj_hidden-out_dim,
predictors out_dim-pred_hidden-out_dim). ``momentum``: ``base`` (the target momentum
rises from it to 1 on a cosine schedule).
"""
from __future__ import annotations

from typing import Any

from harness.core.config_section import checked_section, recipe_section
from harness.core.errors import ConfigError

SHARED_KEYS = ("pretrain_data", "epochs", "batch_size", "arch", "zero_init_residual", "data", "optimizer",
               "schedule", "loop", "heads", "momentum", "augment")
ORL_KEYS = ("patch_size", "patch_augment", "jitter", "loss_weights", "decode_threads")
_HEADS = {"proj_hidden": 4096, "out_dim": 256, "pred_hidden": 4096}


def stage_recipe(cfg: dict[str, Any], section: str, own_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """The recipe of one training stage: shared keys overridden by ``cfg[section]``."""
    over = checked_section(cfg.get(section), set(SHARED_KEYS) | set(own_keys), f"ORL recipe section {section!r}")
    out = {k: cfg[k] for k in SHARED_KEYS if k in cfg}
    out.update(over)
    for key in ("pretrain_data", "epochs", "batch_size", "arch"):
        if key not in out:
            raise ConfigError(f"ORL recipe: {key!r} is missing (top level or section {section!r})")
    return out


def heads_cfg(recipe: dict[str, Any]) -> dict[str, int]:
    given = recipe_section(recipe, "heads", _HEADS)
    return {k: int(given.get(k, v)) for k, v in _HEADS.items()}


def base_momentum(recipe: dict[str, Any]) -> float:
    given = recipe_section(recipe, "momentum", {"base"})  # the momentum always ends at 1
    return float(given.get("base", 0.99))
