"""Strict reading of a configuration section: a mapping whose keys are all known."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.core.errors import ConfigError


def checked_section(section: Any, known: Iterable[str], where: str, required: Iterable[str] = ()) -> dict[str, Any]:
    """``section`` (``None`` reads as empty) as a new dict; a ConfigError naming ``where``
    when it is not a mapping, has a key outside ``known`` or lacks one of ``required``."""
    if section is None:
        section = {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(section).__name__} {section!r}")
    known = set(known)
    unknown = set(section) - known
    if unknown:
        raise ConfigError(f"unknown key(s) in {where}: {sorted(unknown)}; known: {sorted(known)}")
    missing = set(required) - set(section)
    if missing:
        raise ConfigError(f"{where}: missing key(s) {sorted(missing)}")
    return dict(section)


def recipe_section(recipe: Mapping[str, Any], name: str, known: Iterable[str]) -> dict[str, Any]:
    """The recipe section ``name`` ({} when absent), its keys checked against ``known``."""
    return checked_section(recipe.get(name), known, f"recipe section {name!r}")


def field_names(cls: type) -> set[str]:
    """The field names of a dataclass (the keys its section may hold)."""
    return set(cls.__dataclass_fields__)


@dataclass(frozen=True)
class ModelRecipe:
    """What sizes a one-network method's model: the backbone and the method's own section."""

    arch: str
    zero_init_residual: bool
    img_size: int | None  # a ViT's input side
    section: dict[str, Any]


def model_recipe(cfg: Mapping[str, Any], name: str, known: Iterable[str], zero_init_residual: bool) -> ModelRecipe:
    """``arch``, ``zero_init_residual`` (default as given), ``img_size`` and the section
    ``name`` of recipe ``cfg``, its keys checked against ``known``."""
    return ModelRecipe(cfg["arch"], bool(cfg.get("zero_init_residual", zero_init_residual)), cfg.get("img_size"),
                       recipe_section(cfg, name, known))
