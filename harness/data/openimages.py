"""Readers of the Open Images V6/V7 annotation CSVs, class descriptions, hierarchy and masks.

Layout under ``<data_root>/openimages``: images ``<split>/<ImageID>.jpg``; CSVs and the
hierarchy JSON at the top; mask PNGs extracted to ``masks/<split>/<MaskPath>``. The large
CSVs (train boxes: 14.6M rows, ~2.2 GB) are only ever streamed row by row.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data import layout
from harness.data.fileio import (MalformedDataError, MissingDataError, iter_csv, parse_float, parse_int,
                                 read_json, require_listed_files)
from harness.data.images import image_size
from harness.data.image_sets import DetectionImage, DetectionSet, ObjectAnnotation

SPLITS = ("train", "validation", "test")
BOX_COLUMNS = ("ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax",
               "IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")
CLICK_COLUMNS = ("XClick1X", "XClick2X", "XClick3X", "XClick4X", "XClick1Y", "XClick2Y", "XClick3Y", "XClick4Y")
FLAG_COLUMNS = ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")
LABEL_COLUMNS = ("ImageID", "Source", "LabelName", "Confidence")
SEGMENTATION_COLUMNS = ("MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax",
                        "PredictedIoU", "Clicks")

# File names by release; the first one present is read.
BOX_FILES = {"train": ("oidv6-train-annotations-bbox.csv", "train-annotations-bbox.csv"),
             "validation": ("validation-annotations-bbox.csv",), "test": ("test-annotations-bbox.csv",)}
LABEL_FILES = {s: (f"{s}-annotations-human-imagelabels-boxable.csv",
                   f"oidv6-{s}-annotations-human-imagelabels-boxable.csv") for s in SPLITS}
SEGMENTATION_FILES = {s: (f"{s}-annotations-object-segmentation.csv",) for s in SPLITS}
CLASS_FILES = ("class-descriptions-boxable.csv", "oidv7-class-descriptions-boxable.csv",
               "oidv6-class-descriptions-boxable.csv")
HIERARCHY_FILE = "bbox_labels_600_hierarchy.json"


@dataclass(frozen=True)
class OpenImagesBox:
    """One row of a box CSV; coordinates normalised to [0, 1]; flags 1 / 0 / -1 (unknown)."""

    image_id: str
    source: str
    label: str
    confidence: float
    xmin: float
    xmax: float
    ymin: float
    ymax: float
    flags: dict[str, int]
    clicks: tuple[float, ...] | None = None  # XClick1X..4X, XClick1Y..4Y where the file has them


@dataclass(frozen=True)
class OpenImagesLabel:
    """One row of an image-level labels CSV."""

    image_id: str
    source: str
    label: str
    confidence: float


@dataclass(frozen=True)
class OpenImagesMask:
    """One row of an object segmentation CSV; ``mask`` is the PNG's path under ``masks/<split>``."""

    mask: Path
    image_id: str
    label: str
    box_id: str
    box: tuple[float, float, float, float]  # XMin, XMax, YMin, YMax normalised
    predicted_iou: float
    clicks: str


def openimages_dir(data_root: Path) -> Path:
    """``<data_root>/openimages``."""
    return Path(data_root) / layout.OPEN_IMAGES


def find_file(folder: Path, candidates: Iterable[str], what: str) -> Path:
    """The first of ``candidates`` present in ``folder``; ``MissingDataError`` naming all of them otherwise."""
    candidates = tuple(candidates)
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    raise MissingDataError(folder / candidates[0], f"missing; expected {what} (one of {list(candidates)} in {folder})")


def box_csv(data_root: Path, split: str) -> Path:
    """Path of the box CSV of ``split``."""
    return find_file(openimages_dir(data_root), BOX_FILES[_split(split)], f"the {split} box annotations CSV")


def iter_boxes(path: Path, train_format: bool) -> Iterator[OpenImagesBox]:
    """Stream the rows of a box CSV, checking the header and every row.

    ``train_format``: the 21-column train layout (13 box columns + 8 XClick columns, all
    required). Otherwise the 13 box columns are required and the XClick columns allowed.
    Any other column, a coordinate outside [0, 1], XMin > XMax, YMin > YMax or a flag not in
    {1, 0, -1} raises ``MalformedDataError`` naming the file and line.
    """
    required = BOX_COLUMNS + CLICK_COLUMNS if train_format else BOX_COLUMNS
    optional = () if train_format else CLICK_COLUMNS
    for n, row in enumerate(iter_csv(path, "Open Images box annotations", required, optional, exact=True), start=2):
        where = f"row {n}"
        xmin, xmax, ymin, ymax = (parse_float(row[c], path, f"{where} {c}") for c in ("XMin", "XMax", "YMin", "YMax"))
        if not (0.0 <= xmin <= xmax <= 1.0 and 0.0 <= ymin <= ymax <= 1.0):
            raise MalformedDataError(path, f"{where}: box XMin={xmin} XMax={xmax} YMin={ymin} YMax={ymax}; expected "
                                           "0 <= min <= max <= 1")
        flags = {}
        for c in FLAG_COLUMNS:
            value = parse_int(row[c], path, f"{where} {c}")
            if value not in (-1, 0, 1):
                raise MalformedDataError(path, f"{where} {c}: {value}; expected 1, 0 or -1")
            flags[c] = value
        clicks = None
        if "XClick1X" in row:
            clicks = tuple(parse_float(row[c], path, f"{where} {c}") for c in CLICK_COLUMNS)
        yield OpenImagesBox(image_id=row["ImageID"], source=row["Source"], label=row["LabelName"],
                            confidence=parse_float(row["Confidence"], path, f"{where} Confidence"),
                            xmin=xmin, xmax=xmax, ymin=ymin, ymax=ymax, flags=flags, clicks=clicks)


def iter_split_boxes(data_root: Path, split: str) -> Iterator[OpenImagesBox]:
    """Stream the box rows of ``split`` ("train" files use the 21-column layout)."""
    return iter_boxes(box_csv(data_root, split), train_format=_split(split) == "train")


def iter_image_labels(data_root: Path, split: str) -> Iterator[OpenImagesLabel]:
    """Stream ``<split>-annotations-human-imagelabels-boxable.csv`` (ImageID, Source, LabelName, Confidence)."""
    path = find_file(openimages_dir(data_root), LABEL_FILES[_split(split)], f"the {split} image-level labels CSV")
    for n, row in enumerate(iter_csv(path, "Open Images image-level labels", LABEL_COLUMNS, exact=True), start=2):
        yield OpenImagesLabel(image_id=row["ImageID"], source=row["Source"], label=row["LabelName"],
                              confidence=parse_float(row["Confidence"], path, f"row {n} Confidence"))


def iter_segmentations(data_root: Path, split: str) -> Iterator[OpenImagesMask]:
    """Stream ``<split>-annotations-object-segmentation.csv`` rows with their mask PNG paths.

    Mask PNG names are ``<ImageID>_<label mid without slashes>_<BoxID>.png``; a ``MaskPath``
    that does not match its row is a ``MalformedDataError``. Existence of the PNGs is
    checked by ``read_segmentations``.
    """
    split = _split(split)
    root = openimages_dir(data_root)
    path = find_file(root, SEGMENTATION_FILES[split], f"the {split} object segmentation CSV")
    mask_dir = root / "masks" / split
    for n, row in enumerate(iter_csv(path, "Open Images object segmentations", SEGMENTATION_COLUMNS, exact=True),
                            start=2):
        expected = f"{row['ImageID']}_{row['LabelName'].replace('/', '')}_{row['BoxID']}.png"
        if row["MaskPath"] != expected:
            raise MalformedDataError(path, f"row {n}: MaskPath {row['MaskPath']!r}; expected {expected!r}")
        box = tuple(parse_float(row[c], path, f"row {n} {c}") for c in ("BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax"))
        yield OpenImagesMask(mask=mask_dir / row["MaskPath"], image_id=row["ImageID"], label=row["LabelName"],
                             box_id=row["BoxID"], box=box,
                             predicted_iou=parse_float(row["PredictedIoU"], path, f"row {n} PredictedIoU"),
                             clicks=row["Clicks"])


def read_segmentations(data_root: Path, split: str) -> list[OpenImagesMask]:
    """All segmentation rows of ``split``, after checking that every mask PNG exists."""
    rows = list(iter_segmentations(data_root, split))
    require_listed_files([r.mask for r in rows], "the mask PNG named in the segmentation CSV")
    return rows


def read_class_descriptions(data_root: Path) -> dict[str, str]:
    """Label mid -> display name from the boxable class descriptions CSV (file order kept).

    The V5/V6 file has no header; the V7 file starts with ``LabelName,DisplayName``: both
    are read. Every row needs exactly two fields and a mid starting with "/".
    """
    return parse_class_descriptions(find_file(openimages_dir(data_root), CLASS_FILES,
                                              "the boxable class descriptions CSV"))


def parse_class_descriptions(path: Path) -> dict[str, str]:
    """Label mid -> display name from one class descriptions CSV (with or without header)."""
    classes: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as f:
        try:
            for n, row in enumerate(csv.reader(f), start=1):
                if not row:
                    continue
                if n == 1 and [c.strip().lstrip("\ufeff") for c in row] == ["LabelName", "DisplayName"]:
                    continue
                if len(row) != 2 or not row[0].startswith("/"):
                    raise MalformedDataError(path, f"line {n}: {row!r}; expected 2 fields: /m/... mid, display name")
                if row[0] in classes:
                    raise MalformedDataError(path, f"line {n}: duplicate mid {row[0]}")
                classes[row[0]] = row[1]
        except (csv.Error, UnicodeDecodeError) as exc:
            raise MalformedDataError(path, f"unreadable CSV ({exc}); expected mid, display name rows") from exc
    if not classes:
        raise MalformedDataError(path, "no classes; expected mid, display name rows")
    return classes


def read_hierarchy(data_root: Path) -> dict[str, Any]:
    """The label hierarchy tree of ``bbox_labels_600_hierarchy.json``, after checking its structure.

    Every node is an object with a string ``LabelName`` and optional ``Subcategory`` / ``Part``
    lists of nodes.
    """
    path = openimages_dir(data_root) / HIERARCHY_FILE
    tree = read_json(path, "the Open Images label hierarchy (nested LabelName / Subcategory / Part)")
    stack = [(tree, "root")]
    while stack:
        node, where = stack.pop()
        if not isinstance(node, dict) or not isinstance(node.get("LabelName"), str):
            raise MalformedDataError(path, f"{where}: expected an object with a string LabelName")
        for key in ("Subcategory", "Part"):
            children = node.get(key, [])
            if not isinstance(children, list):
                raise MalformedDataError(path, f"{where} ({node['LabelName']}).{key}: expected a list")
            stack.extend((child, f"{node['LabelName']}.{key}[{i}]") for i, child in enumerate(children))
    return tree


def hierarchy_parents(tree: dict[str, Any]) -> dict[str, set[str]]:
    """Label mid -> all its ancestor mids through ``Subcategory`` links (the root excluded)."""
    parents: dict[str, set[str]] = {}
    stack = [(child, frozenset()) for child in tree.get("Subcategory", [])]
    while stack:
        node, ancestors = stack.pop()
        parents.setdefault(node["LabelName"], set()).update(ancestors)
        stack.extend((child, ancestors | {node["LabelName"]}) for child in node.get("Subcategory", []))
    return parents


def read_openimages_det(data_root: Path, split: str, labels: set[str] | None = None,
                        image_ids: set[str] | None = None) -> DetectionSet:
    """Boxes of ``split`` grouped per image as a ``DetectionSet`` (absolute pixel xywh).

    Streams the box CSV, keeping only rows whose label is in ``labels`` and image in
    ``image_ids`` (both optional), so a subset of the train split never holds the full file in
    memory. Categories are the boxable classes (ids 1..N in the class descriptions order; a
    box with an unknown mid is a ``MalformedDataError``). Each image ``<split>/<ImageID>.jpg``
    must exist; its size is read from the header. ``extra`` keeps the mid, flags, source and
    confidence of every box.
    """
    split = _split(split)
    root = openimages_dir(data_root)
    classes = read_class_descriptions(data_root)
    cat_ids = {mid: k + 1 for k, mid in enumerate(classes)}
    path = box_csv(data_root, split)
    grouped: dict[str, list[OpenImagesBox]] = {}
    for box in iter_boxes(path, train_format=split == "train"):
        if (labels is not None and box.label not in labels) or (image_ids is not None and box.image_id not in image_ids):
            continue
        if box.label not in cat_ids:
            raise MalformedDataError(path, f"image {box.image_id}: LabelName {box.label} is not a boxable class")
        grouped.setdefault(box.image_id, []).append(box)
    image_dir = root / split
    require_listed_files([image_dir / f"{i}.jpg" for i in grouped], f"the {split} image of a box row in {path}")
    images = []
    for image_id in sorted(grouped):
        image_path = image_dir / f"{image_id}.jpg"
        width, height = image_size(image_path)
        objects = [ObjectAnnotation(
            bbox=(b.xmin * width, b.ymin * height, (b.xmax - b.xmin) * width, (b.ymax - b.ymin) * height),
            category_id=cat_ids[b.label],
            extra={"label": b.label, "source": b.source, "confidence": b.confidence, **b.flags})
            for b in grouped[image_id]]
        images.append(DetectionImage(image_id=image_id, path=image_path, width=width, height=height, objects=objects))
    categories = [{"id": cat_ids[mid], "name": name, "mid": mid} for mid, name in classes.items()]
    return DetectionSet(name=f"openimages_{split}", root=root, categories=categories, images=images, ann_file=path)


def _split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown Open Images split {split!r}; expected one of {SPLITS}")
    return split

