"""The OpenImage-MINI spec file: validation and its hash."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from harness.core import paths
from harness.core.config import config_hash, read_yaml
from harness.core.errors import ConfigError

REQUIRED = {
    "spec_version": int, "name": str, "open_images_version": str, "seed": int, "classes": dict, "boxes": dict,
    "image_filter": dict, "splits": dict, "outputs": dict,
}


def default_spec_path(tiny: bool = False) -> Path:
    return paths.benchmarks_dir() / "openimage_mini" / ("spec-tiny.yaml" if tiny else "spec.yaml")


def load_spec(path: Path) -> dict[str, Any]:
    """Read and check a spec; every error names the file and the key."""
    spec = read_yaml(path)
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: an OpenImage-MINI spec must be a mapping")
    for key, kind in REQUIRED.items():
        if not isinstance(spec.get(key), kind):
            raise ConfigError(f"{path}: '{key}' must be a {kind.__name__}")
    cls = spec["classes"]
    if cls.get("mode") not in ("auto", "explicit"):
        raise ConfigError(f"{path}: classes.mode must be 'auto' or 'explicit'")
    if cls["mode"] == "explicit" and not cls.get("explicit"):
        raise ConfigError(f"{path}: classes.explicit must list MIDs when classes.mode is explicit")
    for name, split in spec["splits"].items():
        if split.get("source") not in ("train", "validation", "test") or int(split.get("size", 0)) <= 0:
            raise ConfigError(f"{path}: splits.{name} needs source (train/validation/test) and size > 0")
    return spec


def spec_hash(spec: dict[str, Any]) -> str:
    return config_hash(spec)


def prefix_spec(spec: dict[str, Any], images: int) -> dict[str, Any]:
    """The spec of the first ``images`` images of every split's selection order.

    Classes, filters and outputs are the full spec's (the classes are still chosen on all
    the train boxes), so a build of it is a prefix of the full build's image lists: the
    selection walks a seeded hash order and stops ``images`` in. ``prefix_of`` records
    the full spec's hash (and keeps the two builds apart).
    """
    if images < 1:
        raise ConfigError(f"an OpenImage-MINI prefix needs at least one image per split, got {images}")
    out = copy.deepcopy(spec)
    for split in out["splits"].values():
        split["size"] = min(int(split["size"]), int(images))
    out["prefix_of"] = spec_hash(spec)
    return out
