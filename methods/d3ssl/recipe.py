"""Checked access to the D3SSL-specific recipe sections (unknown keys are errors)."""
from __future__ import annotations

from typing import Any

from harness.core.config_section import recipe_section

KNOWN_KEYS = {
    "model": {"arch", "hidden_dim", "proj_dim", "momentum", "zero_init_residual"},
    "roi": {"level", "size", "per_image", "max_boxes", "jitter"},
    "cutout": {"mode", "ratio", "around", "band", "prob", "pseudo_boxes", "fill"},
    "base_cutout": {"prob", "ratio"},
    "small_view": {"scale", "canvas"},
    "decoupling": {"enabled", "weight", "sample_ratio", "views", "invert_half"},
    "depositioning": {"enabled", "weight", "sample_ratio", "views", "invert_half"},
}


def section(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    """The recipe section ``name`` as a dict ({} when absent), its keys checked."""
    return recipe_section(cfg, name, KNOWN_KEYS[name])
