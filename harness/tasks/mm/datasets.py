"""Checks of the four dense-transfer datasets before any model is built.

Each ``check_*`` reads the official layout under a data root with the readers of
:mod:`harness.data` (which name the first missing or malformed file), adds the checks the
protocol needs (non-empty splits, objects to train on), and returns a
:class:`DenseDataset`: the folder mmdet / mmseg read, the classes, the split sizes and a
fingerprint (sha256 over the annotation files' names and bytes, in a fixed order).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from harness.data import layout
from harness.data.image_sets import DetectionSet, SegmentationSet
from harness.core.errors import DataError


@dataclass(frozen=True)
class DenseDataset:
    """What a dense task needs to know about its dataset before training."""

    name: str
    root: Path  # the folder the framework's dataset config points at
    classes: tuple[str, ...]
    sizes: dict[str, int]  # images per split
    fingerprint: str

    def record(self) -> dict[str, object]:
        """The ``dataset`` entry of a task result."""
        return {"name": self.name, "root": str(self.root), "split": "+".join(self.sizes),
                "size": dict(self.sizes), "fingerprint": self.fingerprint, "classes": len(self.classes)}


def fingerprint(name: str, files: Iterable[Path], base: Path) -> str:
    """sha256 over ``name`` and each file's path (relative to ``base``) and bytes."""
    h = hashlib.sha256(name.encode())
    for path in files:
        h.update(f"\n{Path(path).relative_to(base)}\n".encode())
        h.update(Path(path).read_bytes())
    return h.hexdigest()


def _require_images(ds: DetectionSet | SegmentationSet, where: Path) -> int:
    n = len(ds.images) if isinstance(ds, DetectionSet) else len(ds.samples)
    if n == 0:
        raise DataError(f"{where}: the split lists no images")
    return n


def _require_objects(ds: DetectionSet, where: Path) -> None:
    if not any(image.objects for image in ds.images):
        raise DataError(f"{where}: no image of the split has an object annotation")


def check_coco(data_root: Path) -> DenseDataset:
    """COCO 2017 instances, train2017 -> val2017: both files valid and non-empty, with the
    same categories (the classes, in category-id order)."""
    from harness.data.coco import read_coco

    root = Path(data_root) / layout.COCO
    sizes: dict[str, int] = {}
    ann_files = []
    categories = None
    for split in ("train2017", "val2017"):
        ann = root / "annotations" / f"instances_{split}.json"
        ds = read_coco(data_root, split)
        sizes[split] = _require_images(ds, ann)
        _require_objects(ds, ann)
        cats = sorted((int(c["id"]), str(c["name"])) for c in ds.categories)
        if not cats:
            raise DataError(f"{ann}: no categories")
        if categories is not None and cats != categories:
            raise DataError(f"{ann}: categories differ from instances_train2017.json")
        categories = cats
        ann_files.append(ann)
    return DenseDataset(name="COCO 2017 instances", root=root, classes=tuple(n for _, n in categories),
                        sizes=sizes, fingerprint=fingerprint("coco2017-instances", ann_files, root))


# (year, ImageSets/Main list): VOC07+12 trainval for training, VOC07 test for evaluation
VOC_DET_SPLITS = ((2007, "trainval"), (2012, "trainval"), (2007, "test"))


def check_voc_det(data_root: Path) -> DenseDataset:
    """VOC07+12 detection: the three split lists non-empty, every listed XML valid (VOC
    class names, boxes, flags) and its JPEG present."""
    from harness.data.voc import VOC_DET_CLASSES, read_voc_det, voc_year_dir

    root = Path(data_root) / layout.VOC
    sizes: dict[str, int] = {}
    files: list[Path] = []
    for year, split in VOC_DET_SPLITS:
        base = voc_year_dir(data_root, year)
        split_file = base / "ImageSets" / "Main" / f"{split}.txt"
        ds = read_voc_det(data_root, year, split)
        sizes[f"VOC{year}_{split}"] = _require_images(ds, split_file)
        _require_objects(ds, split_file)
        files.append(split_file)
        files.extend(base / "Annotations" / f"{image.image_id}.xml" for image in ds.images)
    return DenseDataset(name="PASCAL VOC07+12 detection", root=root, classes=tuple(VOC_DET_CLASSES),
                        sizes=sizes, fingerprint=fingerprint("voc0712-detection", files, root))


def check_ade20k(data_root: Path) -> DenseDataset:
    """ADEChallengeData2016: both splits have images, every image its label map."""
    from harness.data.ade20k import read_ade20k

    root = Path(data_root) / layout.ADE20K
    sizes: dict[str, int] = {}
    labels: list[Path] = []
    classes: tuple[str, ...] = ()
    for split in ("training", "validation"):
        ds = read_ade20k(data_root, split)
        sizes[split] = _require_images(ds, root / "images" / split)
        labels.extend(label for _, label in ds.samples)
        classes = tuple(ds.classes)
    return DenseDataset(name="ADE20K (ADEChallengeData2016)", root=root, classes=classes, sizes=sizes,
                        fingerprint=fingerprint("ade20k-scene-parsing", labels, root))


# (ImageSets/Segmentation list, SBD aug labels?): train + aug for training, val for evaluation
VOC_SEG_SPLITS = (("train", False), ("aug", True), ("val", False))


def check_voc_seg(data_root: Path) -> DenseDataset:
    """VOC2012 + SBD aug segmentation: train / aug / val lists non-empty, every listed id
    with its JPEG and its label map in the folder the protocol reads."""
    from harness.data.voc import VOC_SEG_CLASSES, read_voc_seg, voc_year_dir

    root = voc_year_dir(data_root, 2012)
    sizes: dict[str, int] = {}
    files: list[Path] = []
    for split, aug in VOC_SEG_SPLITS:
        split_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        ds = read_voc_seg(data_root, split, aug=aug)
        sizes[split] = _require_images(ds, split_file)
        files.append(split_file)
        files.extend(label for _, label in ds.samples)
    return DenseDataset(name="PASCAL VOC 2012 + SBD aug segmentation", root=root, classes=tuple(VOC_SEG_CLASSES),
                        sizes=sizes, fingerprint=fingerprint("voc12aug-segmentation", files, root))
