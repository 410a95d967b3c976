"""Readers of a built OpenImage-MINI folder (layout in :mod:`harness.data.openimage_mini.build`):
its class list, the paths of its COCO-format and semantic-map files, and its object crops."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.data.fileio import MalformedDataError, read_json
from harness.data.folders import read_image_folder
from harness.data.image_sets import ClassificationSet

SPLITS = ("train", "val")
CLASSES_FILE = "classes.json"
MANIFEST_FILE = "manifest.json"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown OpenImage-MINI split {split!r}; expected one of {SPLITS}")


def read_classes(root: Path) -> list[str]:
    """The class names of ``classes.json`` in id order (ids 1..C, contiguous, names unique)."""
    path = Path(root) / CLASSES_FILE
    data = read_json(path, "the OpenImage-MINI class list [{id, mid, name}, ...]")
    if not isinstance(data, list) or not data:
        raise MalformedDataError(path, "expected a non-empty list of {id, mid, name}")
    for i, entry in enumerate(data, start=1):
        if not isinstance(entry, dict) or entry.get("id") != i or not isinstance(entry.get("name"), str) \
                or not entry["name"]:
            raise MalformedDataError(path, f"entry {i - 1} must be {{id: {i}, mid, name}} (ids 1..C in order), "
                                           f"got {entry!r}")
    names = [entry["name"] for entry in data]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise MalformedDataError(path, f"duplicate class names {duplicates}")
    return names


def read_manifest(root: Path) -> dict[str, Any]:
    """``manifest.json``: the spec, its hash, the input sha256s, the selection, the counts."""
    path = Path(root) / MANIFEST_FILE
    data = read_json(path, "the OpenImage-MINI build manifest")
    if not isinstance(data, dict) or not isinstance(data.get("spec_hash"), str):
        raise MalformedDataError(path, "expected a mapping with 'spec_hash', 'spec' and 'counts'")
    return data


def instances_file(root: Path, split: str) -> Path:
    """``annotations/instances_<split>.json`` (COCO format, categories 1..C)."""
    _check_split(split)
    return Path(root) / "annotations" / f"instances_{split}.json"


def image_dir(root: Path, split: str) -> Path:
    _check_split(split)
    return Path(root) / "images" / split


def seg_dir(root: Path, split: str) -> Path:
    """Semantic maps ``<ImageID>.png``: 0 background, 1..C classes, 255 ignore."""
    _check_split(split)
    return Path(root) / "seg" / split


def read_crops(root: Path, split: str) -> ClassificationSet:
    """Object crops ``crops/<split>/<class name>/*.jpg``. Labels index the ``classes.json``
    order, so both splits share one label space; a class without crops in a split simply
    has no sample there."""
    _check_split(split)
    return read_image_folder(Path(root) / "crops" / split, f"openimage_mini_crops_{split}", read_classes(root))
