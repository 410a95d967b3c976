"""Readers of class-per-folder image trees: a generic one and COCO-Crop."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from harness.data import layout
from harness.data.fileio import MalformedDataError, MissingDataError, require_dir, sub_dirs
from harness.data.images import is_image_name
from harness.data.image_sets import ClassificationSet

COCO_CROP_SPLITS = ("train", "val")


def images_in(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    with os.scandir(folder) as entries:
        return [folder / n for n in sorted(e.name for e in entries if e.is_file() and is_image_name(e.name))]


def read_image_folder(folder: Path, name: str, classes: Sequence[str] | None = None) -> ClassificationSet:
    """Read ``folder/<class>/<image>`` (image files directly in each class folder, sorted by name).

    ``classes`` fixes the label order (label = index in ``classes``); every class folder must
    then be one of them, and classes without a folder simply have no samples. Without
    ``classes`` the labels follow the sorted folder names. A tree with no image at all is
    an error.
    """
    folder = Path(folder)
    require_dir(folder, "a folder with one sub-folder per class")
    found = sub_dirs(folder)
    if classes is None:
        classes = found
    else:
        classes = list(classes)
        unknown = [d for d in found if d not in classes]
        if unknown:
            raise MalformedDataError(folder, f"unexpected class folders {unknown[:5]}; expected a subset of "
                                             f"{classes[:10]}{'...' if len(classes) > 10 else ''}")
    index = {c: i for i, c in enumerate(classes)}
    samples = [(path, index[cls]) for cls in found for path in images_in(folder / cls)]
    if not samples:
        raise MissingDataError(folder, "no image files found; expected <class>/<image> files")
    return ClassificationSet(name=name, root=folder, classes=list(classes), samples=samples)


def read_coco_crop(data_root: Path, split: str) -> ClassificationSet:
    """Read COCO-Crop object crops ``coco_crop/<split>/<category name>/<ann id>.jpg``.

    Labels index the sorted union of the category folders of ``train`` and ``val``, so both
    splits share one label space even when a split lacks a category.
    """
    if split not in COCO_CROP_SPLITS:
        raise ValueError(f"unknown COCO-Crop split {split!r}; expected one of {COCO_CROP_SPLITS}")
    root = Path(data_root) / layout.COCO_CROP
    require_dir(root / split, f"COCO-Crop {split} folder with one folder per category")
    classes = sorted({c for s in COCO_CROP_SPLITS if (root / s).is_dir() for c in sub_dirs(root / s)})
    return read_image_folder(root / split, name=f"coco_crop_{split}", classes=classes)
