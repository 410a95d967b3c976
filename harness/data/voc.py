"""Readers of PASCAL VOC: 2012 segmentation (incl. SegmentationClassAug) and 2007/2012 detection XML."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from harness.data import layout
from harness.data.fileio import (MalformedDataError, parse_float, parse_int, read_lines, require_dir,
                                 require_listed_files)
from harness.data.image_sets import DetectionImage, DetectionSet, ObjectAnnotation, SegmentationSet

VOC_DET_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)
VOC_SEG_CLASSES = ("background",) + VOC_DET_CLASSES
SEG_SPLITS = ("train", "val", "trainaug", "aug")
DET_SPLITS = ("train", "val", "trainval", "test")


def voc_year_dir(data_root: Path, year: int | str) -> Path:
    """``<data_root>/VOCdevkit/VOC<year>``."""
    return Path(data_root) / layout.VOC / f"VOC{year}"


def read_voc_seg(data_root: Path, split: str, aug: bool) -> SegmentationSet:
    """Read VOC2012 segmentation ids of ``ImageSets/Segmentation/<split>.txt``.

    ``aug=False`` pairs ``JPEGImages/<id>.jpg`` with the palette PNGs of
    ``SegmentationClass``; ``aug=True`` with the plain PNGs of ``SegmentationClassAug``
    (SBD-converted labels, which also cover the VOC train images). Labels 0..20, 255 =
    ignore (object borders). ``trainaug`` (10,582 ids) = ``train`` (1,464) + ``aug`` (9,118).
    """
    if split not in SEG_SPLITS:
        raise ValueError(f"unknown VOC segmentation split {split!r}; expected one of {SEG_SPLITS}")
    root = voc_year_dir(data_root, 2012)
    label_dir_name = "SegmentationClassAug" if aug else "SegmentationClass"
    list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    ids = read_lines(list_file, "one VOC image id per line")
    image_dir = require_dir(root / "JPEGImages", "VOC2012 JPEG images")
    label_dir = require_dir(root / label_dir_name, f"VOC2012 {label_dir_name} label PNGs")
    samples = [(image_dir / f"{i}.jpg", label_dir / f"{i}.png") for i in ids]
    require_listed_files([s[0] for s in samples], f"the image of an id listed in {list_file}")
    require_listed_files([s[1] for s in samples], f"the {label_dir_name} label of an id listed in {list_file}")
    name = f"voc2012_seg_{split}" + ("_aug" if aug else "")
    return SegmentationSet(name=name, root=root, classes=list(VOC_SEG_CLASSES), samples=samples,
                           ignore_index=255, reduce_zero_label=False)


def read_voc12aug_train(data_root: Path) -> SegmentationSet:
    """The VOC12aug training set as mmseg builds it: ``train`` with ``SegmentationClass``
    labels followed by ``aug`` with ``SegmentationClassAug`` labels (10,582 pairs)."""
    train, extra = read_voc_seg(data_root, "train", aug=False), read_voc_seg(data_root, "aug", aug=True)
    return SegmentationSet(name="voc2012_seg_train+aug", root=train.root, classes=train.classes,
                           samples=train.samples + extra.samples, ignore_index=255, reduce_zero_label=False)


def read_voc_det(data_root: Path, year: int | str, split: str) -> DetectionSet:
    """Read VOC<year> detection ids of ``ImageSets/Main/<split>.txt`` and their ``Annotations/<id>.xml``.

    Every XML needs ``size/{width,height}`` and, per object, ``name`` (one of the 20 VOC
    classes), ``pose``, ``truncated``, ``difficult`` and ``bndbox/{xmin,ymin,xmax,ymax}`` in
    1-based inclusive integer pixels. Boxes are returned 0-based as (xmin - 1, ymin - 1,
    xmax - xmin + 1, ymax - ymin + 1); the raw 1-based corners are in ``extra["voc_box"]``.
    ``difficult`` objects are kept and flagged (the protocol excludes them from training and
    from AP). Category ids are 1..20 in ``VOC_DET_CLASSES`` order.
    """
    if split not in DET_SPLITS:
        raise ValueError(f"unknown VOC detection split {split!r}; expected one of {DET_SPLITS}")
    root = voc_year_dir(data_root, year)
    list_file = root / "ImageSets" / "Main" / f"{split}.txt"
    ids = read_lines(list_file, "one VOC image id per line")
    ann_dir = require_dir(root / "Annotations", f"VOC{year} Annotations/<id>.xml")
    image_dir = require_dir(root / "JPEGImages", f"VOC{year} JPEGImages/<id>.jpg")
    require_listed_files([ann_dir / f"{i}.xml" for i in ids], f"the annotation of an id listed in {list_file}")
    require_listed_files([image_dir / f"{i}.jpg" for i in ids], f"the image of an id listed in {list_file}")
    images = [_parse_voc_xml(ann_dir / f"{i}.xml", i, image_dir / f"{i}.jpg") for i in ids]
    categories = [{"id": k + 1, "name": n} for k, n in enumerate(VOC_DET_CLASSES)]
    return DetectionSet(name=f"voc{year}_det_{split}", root=root, categories=categories, images=images)


def _parse_voc_xml(path: Path, image_id: str, image_path: Path) -> DetectionImage:
    try:
        tree = ET.parse(path)
    except ET.ParseError as exc:
        raise MalformedDataError(path, f"invalid XML ({exc}); expected a VOC annotation") from exc
    ann = tree.getroot()
    width = parse_int(_text(ann, "size/width", path, "annotation"), path, "size/width")
    height = parse_int(_text(ann, "size/height", path, "annotation"), path, "size/height")
    objects = []
    for k, obj in enumerate(ann.findall("object")):
        where = f"object {k + 1}"
        name = _text(obj, "name", path, where)
        if name not in VOC_DET_CLASSES:
            raise MalformedDataError(path, f"{where}: class {name!r}; expected one of the 20 VOC classes")
        pose = _text(obj, "pose", path, where)
        truncated = _flag(_text(obj, "truncated", path, where), path, f"{where}/truncated")
        difficult = _flag(_text(obj, "difficult", path, where), path, f"{where}/difficult")
        corners = []
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            value = parse_float(_text(obj, f"bndbox/{tag}", path, where), path, f"{where}/bndbox/{tag}")
            if not value.is_integer():
                raise MalformedDataError(path, f"{where}/bndbox/{tag}: {value}; expected an integer pixel")
            corners.append(int(value))
        xmin, ymin, xmax, ymax = corners
        if not (1 <= xmin <= xmax and 1 <= ymin <= ymax):
            raise MalformedDataError(path, f"{where}: box {corners}; expected 1 <= xmin <= xmax, 1 <= ymin <= ymax")
        objects.append(ObjectAnnotation(
            bbox=(xmin - 1.0, ymin - 1.0, float(xmax - xmin + 1), float(ymax - ymin + 1)),
            category_id=VOC_DET_CLASSES.index(name) + 1, difficult=difficult,
            extra={"pose": pose, "truncated": truncated, "voc_box": tuple(corners)}))
    return DetectionImage(image_id=image_id, path=image_path, width=width, height=height, objects=objects)


def _text(node: ET.Element, tag: str, path: Path, where: str) -> str:
    found = node.find(tag)
    if found is None or found.text is None or not found.text.strip():
        raise MalformedDataError(path, f"{where}: missing <{tag}>; VOC annotations require it")
    return found.text.strip()


def _flag(text: str, path: Path, where: str) -> bool:
    value = parse_int(text, path, where)
    if value not in (0, 1):
        raise MalformedDataError(path, f"{where}: {value}; expected 0 or 1")
    return bool(value)
