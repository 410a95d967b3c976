"""Reader of CUB-200-2011 (classification, boxes) and its ReDO localization split."""
from __future__ import annotations

from pathlib import Path

from harness.data import layout
from harness.data.fileio import (MalformedDataError, parse_float, parse_int, read_fields, require_dir,
                                 require_listed_files)
from harness.data.image_sets import ClassificationSet, MaskSet

SPLITS = ("train", "test", "all")
# ReDO's split file (github.com/mickaelChen/ReDO datasplits/cub/train_val_test_split.txt), placed in
# CUB_200_2011/ as ReDO and ContraCAM expect: "<image id> <0 train | 1 val | 2 test>"; 10,000 / 788 / 1,000.
REDO_SPLIT_FILE = "train_val_test_split.txt"
REDO_SPLITS = {"train": 0, "val": 1, "test": 2}


def cub_dir(data_root: Path) -> Path:
    """``<data_root>/CUB_200_2011``."""
    return Path(data_root) / layout.CUB


def read_cub_images(data_root: Path) -> dict[int, str]:
    """``images.txt``: image id -> relative path under ``images/`` (file order)."""
    path = cub_dir(data_root) / "images.txt"
    images: dict[int, str] = {}
    for k, (id_text, rel) in enumerate(read_fields(path, "<image id> <relative path>", 2), start=1):
        image_id = parse_int(id_text, path, f"line {k}")
        if image_id in images:
            raise MalformedDataError(path, f"line {k}: duplicate image id {image_id}")
        images[image_id] = rel
    if not images:
        raise MalformedDataError(path, "no images; expected <image id> <relative path> lines")
    return images


def read_cub(data_root: Path, split: str) -> ClassificationSet:
    """Read CUB-200-2011 ``split`` ("train" 5,994 / "test" 5,794 / "all" 11,788 images).

    Joins images.txt, image_class_labels.txt (class ids 1..200 -> labels 0..199),
    train_test_split.txt (1 = train) and bounding_boxes.txt (x, y, w, h in pixels); every
    file must cover exactly the ids of images.txt. ``classes`` come from classes.txt
    ("<id> <name>", ids 1..N). ``metadata`` rows hold ``image_id`` and ``bbox``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown CUB split {split!r}; expected one of {SPLITS}")
    root = cub_dir(data_root)
    images = read_cub_images(data_root)
    classes = _read_classes(root / "classes.txt")
    labels = _per_image(root / "image_class_labels.txt", images, "<image id> <class id>", 1)
    is_train = _per_image(root / "train_test_split.txt", images, "<image id> <1 train | 0 test>", 1)
    boxes = _per_image(root / "bounding_boxes.txt", images, "<image id> <x> <y> <width> <height>", 4)
    label_path = root / "image_class_labels.txt"
    samples, metadata = [], []
    for image_id, rel in images.items():
        label = parse_int(labels[image_id][0], label_path, f"image {image_id} class id")
        if not 1 <= label <= len(classes):
            raise MalformedDataError(label_path, f"image {image_id}: class id {label}; expected 1..{len(classes)}")
        flag = parse_int(is_train[image_id][0], root / "train_test_split.txt", f"image {image_id}")
        if flag not in (0, 1):
            raise MalformedDataError(root / "train_test_split.txt", f"image {image_id}: {flag}; expected 1 or 0")
        if split != "all" and (flag == 1) != (split == "train"):
            continue
        bbox = tuple(parse_float(v, root / "bounding_boxes.txt", f"image {image_id}") for v in boxes[image_id])
        samples.append((root / "images" / rel, label - 1))
        metadata.append({"image_id": image_id, "bbox": bbox})
    require_dir(root / "images", "CUB images/<class folder>/<name>.jpg")
    require_listed_files([p for p, _ in samples], "the image named in images.txt")
    return ClassificationSet(name=f"cub_{split}", root=root, classes=classes, samples=samples,
                             metadata=tuple(metadata))


def read_cub_localization(data_root: Path, split: str = "test") -> MaskSet:
    """CUB image / soft-mask pairs of the ReDO ``split`` ("train" / "val" / "test"; test = 1,000).

    Needs ``CUB_200_2011/train_val_test_split.txt`` (ReDO's file, not part of the CUB
    release) and ``segmentations/<images.txt path with .png>``. ``mask_format="soft_png"``.
    """
    if split not in REDO_SPLITS:
        raise ValueError(f"unknown ReDO split {split!r}; expected one of {sorted(REDO_SPLITS)}")
    root = cub_dir(data_root)
    images = read_cub_images(data_root)
    split_path = root / REDO_SPLIT_FILE
    assignment = _per_image(split_path, images, "ReDO split lines <image id> <0|1|2>", 1)
    samples = []
    for image_id, rel in images.items():
        code = parse_int(assignment[image_id][0], split_path, f"image {image_id}")
        if code not in (0, 1, 2):
            raise MalformedDataError(split_path, f"image {image_id}: split {code}; expected 0, 1 or 2")
        if code == REDO_SPLITS[split]:
            samples.append((root / "images" / rel, root / "segmentations" / str(Path(rel).with_suffix(".png"))))
    require_listed_files([s[0] for s in samples], "the image named in images.txt")
    require_listed_files([s[1] for s in samples], "the CUB segmentation mask of an image (segmentations/)")
    return MaskSet(name=f"cub_redo_{split}", root=root, samples=samples, mask_format="soft_png")


def _read_classes(path: Path) -> list[str]:
    rows = read_fields(path, "<class id> <class name>", 2)
    ids = [parse_int(i, path, f"line {k}") for k, (i, _) in enumerate(rows, start=1)]
    if ids != list(range(1, len(rows) + 1)):
        raise MalformedDataError(path, f"class ids {ids[:10]}...; expected 1..{len(rows)} in order")
    return [name for _, name in rows]


def _per_image(path: Path, images: dict[int, str], what: str, n_values: int) -> dict[int, list[str]]:
    """Rows ``<image id> <n_values values>`` keyed by id; the ids must be exactly those of images.txt."""
    values: dict[int, list[str]] = {}
    for k, fields in enumerate(read_fields(path, what, 1 + n_values), start=1):
        image_id = parse_int(fields[0], path, f"line {k}")
        if image_id not in images:
            raise MalformedDataError(path, f"line {k}: image id {image_id} is not in images.txt")
        values[image_id] = fields[1:]
    missing = [i for i in images if i not in values]
    if missing:
        raise MalformedDataError(path, f"no line for image ids {missing[:5]}; expected one line per image of images.txt")
    return values
