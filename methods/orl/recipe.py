"""How an ORL recipe splits into the settings of its three stages.

Top-level keys (``epochs``, ``batch_size``, ``arch``, ``data``, ``optimizer``,
``schedule``, ``loop``, ``heads``, ``momentum``, ``augment``) are shared by the two
training stages; the sections ``byol`` (stage 1) and ``orl`` (stage 3) may override any of
them for their stage and hold that stage's own keys. ``correspondence`` configures stage 2.
"""
from __future__ import annotations

from typing import Any

from harness.errors import ConfigError

SHARED_KEYS = ("epochs", "batch_size", "arch", "data", "optimizer", "schedule", "loop", "heads", "momentum",
               "augment")
ORL_KEYS = ("patch_size", "patch_augment", "jitter", "loss_weights", "decode_threads")


def stage_recipe(cfg: dict[str, Any], section: str, own_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """The recipe of one training stage: shared keys overridden by ``cfg[section]``."""
    over = dict(cfg.get(section) or {})
    unknown = set(over) - set(SHARED_KEYS) - set(own_keys)
    if unknown:
        raise ConfigError(f"unknown key(s) in ORL recipe section {section!r}: {sorted(unknown)}; "
                          f"known: {sorted(set(SHARED_KEYS) | set(own_keys))}")
    out = {k: cfg[k] for k in SHARED_KEYS if k in cfg}
    out.update(over)
    for key in ("epochs", "batch_size", "arch"):
        if key not in out:
            raise ConfigError(f"ORL recipe: {key!r} is missing (top level or section {section!r})")
    return out


def heads_cfg(cfg: dict[str, Any]) -> dict[str, int]:
    h = {"proj_hidden": 4096, "out_dim": 256, "pred_hidden": 4096}
    extra = set(cfg.get("heads") or {}) - set(h)
    if extra:
        raise ConfigError(f"unknown key(s) in recipe section 'heads': {sorted(extra)}; known: {sorted(h)}")
    h.update({k: int(v) for k, v in (cfg.get("heads") or {}).items()})
    return h


def momentum_cfg(cfg: dict[str, Any]) -> tuple[float, float]:
    m = dict(cfg.get("momentum") or {})
    extra = set(m) - {"base", "end"}
    if extra:
        raise ConfigError(f"unknown key(s) in recipe section 'momentum': {sorted(extra)}; known: ['base', 'end']")
    return float(m.get("base", 0.99)), float(m.get("end", 1.0))
