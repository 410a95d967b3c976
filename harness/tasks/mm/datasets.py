"""Cheap checks of the four dense-transfer datasets before any model is built.

Each ``check_*`` reads the official layout under a data root (see
:mod:`harness.data.layout`), raises :class:`DataError` naming the first broken file, and
returns a :class:`DenseDataset` with the class names the task trains on and a fingerprint
(sha256 over the annotation files' bytes, in a fixed order).
"""
from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from harness.data import layout
from harness.errors import DataError

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


@dataclass(frozen=True)
class DenseDataset:
    """What a dense task needs to know about its dataset before training."""

    name: str
    root: Path  # the dataset folder under the data root
    classes: tuple[str, ...]
    sizes: dict[str, int]  # images per split
    fingerprint: str
    extra: dict[str, object] = field(default_factory=dict)

    def record(self) -> dict[str, object]:
        """The ``dataset`` entry of a task result."""
        return {"name": self.name, "root": str(self.root), "split": "+".join(self.sizes),
                "size": dict(self.sizes), "fingerprint": self.fingerprint, "classes": len(self.classes)}


class _Hasher:
    def __init__(self, name: str) -> None:
        self._h = hashlib.sha256(name.encode())

    def add(self, path: Path, base: Path) -> None:
        self._h.update(f"{path.relative_to(base)}\n".encode())
        self._h.update(path.read_bytes())

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: missing ({what})")
    return path


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: missing folder ({what})")
    return path


def _read_ids(path: Path, what: str) -> list[str]:
    ids = [line.split()[0] for line in _require_file(path, what).read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(f"{path}: empty split list ({what})")
    return ids


# --------------------------------------------------------------------------- COCO
def check_coco(data_root: Path) -> DenseDataset:
    """COCO 2017 instances: both annotation files parse, are non-empty, agree on the
    categories, and every listed image file exists."""
    root = Path(data_root) / layout.COCO
    hasher = _Hasher("coco2017-instances")
    sizes: dict[str, int] = {}
    categories = None
    for split in ("train2017", "val2017"):
        ann = _require_file(root / "annotations" / f"instances_{split}.json", f"COCO {split} instances")
        try:
            data = json.loads(ann.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{ann}: not valid JSON ({exc})") from exc
        for key in ("images", "annotations", "categories"):
            if not isinstance(data.get(key), list) or not data[key]:
                raise DataError(f"{ann}: expected a non-empty list under {key!r}")
        cats = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
        if categories is not None and cats != categories:
            raise DataError(f"{ann}: categories differ from instances_train2017.json")
        categories = cats
        image_dir = _require_dir(root / split, f"COCO {split} images")
        for image in data["images"]:
            if not (image_dir / image["file_name"]).is_file():
                raise DataError(f"{image_dir / image['file_name']}: image listed in {ann.name} is missing")
        sizes[split] = len(data["images"])
        hasher.add(ann, root)
    return DenseDataset(
        name="COCO 2017 instances", root=root, classes=tuple(name for _, name in categories),
        sizes=sizes, fingerprint=hasher.hexdigest(),
        extra={"category_ids": [cid for cid, _ in categories]},
    )


# --------------------------------------------------------------------------- VOC detection
VOC_DET_SPLITS = (("VOC2007", "trainval"), ("VOC2012", "trainval"), ("VOC2007", "test"))


def check_voc_det(data_root: Path) -> DenseDataset:
    """VOC07+12 detection: the three split lists exist and are non-empty, every listed id
    has its XML (parsed here) and JPEG. The classes are the 20 VOC classes, or the
    synthetic benchmark's classes when the XMLs name only those."""
    from harness.data.layout import SYNTHETIC_CLASSES

    root = Path(data_root) / layout.VOC
    hasher = _Hasher("voc0712-detection")
    sizes: dict[str, int] = {}
    names: set[str] = set()
    for year, split in VOC_DET_SPLITS:
        base = root / year
        split_file = base / "ImageSets" / "Main" / f"{split}.txt"
        ids = _read_ids(split_file, f"{year} {split} detection split")
        hasher.add(split_file, root)
        for image_id in ids:
            xml = _require_file(base / "Annotations" / f"{image_id}.xml", f"listed in {split_file.name}")
            _require_file(base / "JPEGImages" / f"{image_id}.jpg", f"listed in {split_file.name}")
            names |= _voc_xml_names(xml)
            hasher.add(xml, root)
        sizes[f"{year}_{split}"] = len(ids)
    if not names:
        raise DataError(f"{root}: no objects in any VOC XML annotation")
    if names <= set(VOC_CLASSES):
        classes: tuple[str, ...] = VOC_CLASSES
    elif names <= set(SYNTHETIC_CLASSES):
        classes = tuple(SYNTHETIC_CLASSES)
    else:
        unknown = sorted(names - set(VOC_CLASSES))
        raise DataError(f"{root}: object names outside the 20 VOC classes: {', '.join(unknown[:10])}")
    return DenseDataset(name="PASCAL VOC07+12 detection", root=root, classes=classes, sizes=sizes,
                        fingerprint=hasher.hexdigest())


def _voc_xml_names(path: Path) -> set[str]:
    try:
        tree = ET.parse(path)
    except ET.ParseError as exc:
        raise DataError(f"{path}: not valid XML ({exc})") from exc
    names = set()
    for obj in tree.getroot().findall("object"):
        name, box = obj.find("name"), obj.find("bndbox")
        if name is None or not (name.text or "").strip() or box is None:
            raise DataError(f"{path}: an <object> lacks <name> or <bndbox>")
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            if box.find(tag) is None:
                raise DataError(f"{path}: <bndbox> lacks <{tag}>")
        names.add(name.text.strip())
    return names


# --------------------------------------------------------------------------- ADE20K
ADE_SPLITS = ("training", "validation")


def check_ade20k(data_root: Path) -> DenseDataset:
    """ADEChallengeData2016: both splits have images, and every image its label map."""
    root = Path(data_root) / layout.ADE20K
    hasher = _Hasher("ade20k-scene-parsing")
    sizes: dict[str, int] = {}
    for split in ADE_SPLITS:
        image_dir = _require_dir(root / "images" / split, f"ADE20K {split} images")
        label_dir = _require_dir(root / "annotations" / split, f"ADE20K {split} label maps")
        images = sorted(image_dir.glob("*.jpg"))
        if not images:
            raise DataError(f"{image_dir}: no .jpg images")
        for image in images:
            hasher.add(_require_file(label_dir / f"{image.stem}.png", f"label map of {image.name}"), root)
        sizes[split] = len(images)
    from mmseg.datasets import ADE20KDataset

    return DenseDataset(name="ADE20K (ADEChallengeData2016)", root=root,
                        classes=tuple(ADE20KDataset.METAINFO["classes"]), sizes=sizes,
                        fingerprint=hasher.hexdigest())


# --------------------------------------------------------------------------- VOC segmentation
# (split list, label folder) of the VOC12aug protocol: train + SBD aug for training, val for eval.
VOC_SEG_SPLITS = (("train", "SegmentationClass"), ("aug", "SegmentationClassAug"), ("val", "SegmentationClass"))


def check_voc_seg(data_root: Path) -> DenseDataset:
    """VOC2012 + SBD aug segmentation: train/aug/val lists exist and are non-empty, every
    listed id has its JPEG and its label map in the folder the protocol reads."""
    root = Path(data_root) / layout.VOC / "VOC2012"
    hasher = _Hasher("voc12aug-segmentation")
    sizes: dict[str, int] = {}
    for split, label_folder in VOC_SEG_SPLITS:
        split_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        what = "VOC12aug split (SBD ids minus VOC train/val)" if split == "aug" else f"VOC2012 {split} split"
        ids = _read_ids(split_file, what)
        hasher.add(split_file, root)
        for image_id in ids:
            _require_file(root / "JPEGImages" / f"{image_id}.jpg", f"listed in {split_file.name}")
            hasher.add(_require_file(root / label_folder / f"{image_id}.png", f"listed in {split_file.name}"), root)
        sizes[split] = len(ids)
    from mmseg.datasets import PascalVOCDataset

    return DenseDataset(name="PASCAL VOC 2012 + SBD aug segmentation", root=root,
                        classes=tuple(PascalVOCDataset.METAINFO["classes"]), sizes=sizes,
                        fingerprint=hasher.hexdigest())
