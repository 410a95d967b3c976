"""Readers of the Backgrounds Challenge (ImageNet-9 variants) and its foreground masks."""
from __future__ import annotations

import re
from pathlib import Path

from harness.data import layout
from harness.data.fileio import MalformedDataError, require_dir, require_listed_files, sub_dirs
from harness.data.folders import read_image_folder
from harness.data.image_sets import ClassificationSet, MaskSet

VARIANTS = ("original", "only_fg", "no_fg", "only_bg_b", "only_bg_t", "mixed_same", "mixed_rand", "mixed_next")
SPLITS = ("train", "val")
_CLASS_DIR = re.compile(r"^(\d+)_(.+)$")


def bg_challenge_classes(folder: Path) -> tuple[list[str], list[str]]:
    """(class folder names sorted by their number, class names) of a split folder.

    Folders are ``NN_name`` (the name may contain spaces, e.g. ``02_wheeled vehicle``);
    the numbers must be 0..n-1 without gaps.
    """
    require_dir(folder, "class folders named NN_name")
    entries = []
    for d in sub_dirs(folder):
        match = _CLASS_DIR.match(d)
        if not match:
            raise MalformedDataError(folder / d, "class folder name; expected NN_name (e.g. 00_dog)")
        entries.append((int(match.group(1)), d, match.group(2)))
    entries.sort()
    numbers = [n for n, _, _ in entries]
    if numbers != list(range(len(entries))):
        raise MalformedDataError(folder, f"class folder numbers {numbers}; expected 0..{len(entries) - 1}")
    return [d for _, d, _ in entries], [name for _, _, name in entries]


def read_bg_challenge(data_root: Path, variant: str, split: str = "val") -> ClassificationSet:
    """Read ``bg_challenge/<variant>/<split>/<NN_class>/<image>``; label = NN, classes = names."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown Backgrounds Challenge variant {variant!r}; expected one of {VARIANTS}")
    if split not in SPLITS:
        raise ValueError(f"unknown Backgrounds Challenge split {split!r}; expected one of {SPLITS}")
    folder = Path(data_root) / layout.BG_CHALLENGE / variant / split
    dirs, names = bg_challenge_classes(folder)
    raw = read_image_folder(folder, name=f"bg_challenge_{variant}_{split}", classes=dirs)
    return ClassificationSet(name=raw.name, root=raw.root, classes=names, samples=raw.samples)


def read_fg_masks(data_root: Path, split: str = "val") -> MaskSet:
    """Pair every ``original/<split>`` image with ``fg_mask/<split>/<NN_class>/<stem>.npy``.

    Every original image must have its mask (``MissingDataError`` names the first absent
    one); the ``MaskSet`` has ``mask_format="npy"``.
    """
    original = read_bg_challenge(data_root, "original", split)
    mask_root = require_dir(Path(data_root) / layout.BG_CHALLENGE / "fg_mask" / split,
                            "Backgrounds Challenge foreground masks <NN_class>/<name>.npy")
    samples = [(img, mask_root / img.parent.name / f"{img.stem}.npy") for img, _ in original.samples]
    require_listed_files([m for _, m in samples], "the foreground mask of an original image")
    return MaskSet(name=f"bg_challenge_fg_mask_{split}", root=mask_root, samples=samples, mask_format="npy")

