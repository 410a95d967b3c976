"""What ``harness data verify`` knows about each dataset: where it lives, how to read each
split, and the official sizes.

``DATASETS[name]`` is a ``DatasetSpec``. A dataset counts as present when its ``marker``
folder (relative to the data root, from ``layout``) exists. Each ``SplitSpec`` reads one
split with the readers of this package; a split is present when one of its ``probe`` paths
exists; a present dataset must have all its ``required`` splits. ``official`` is the size
of the real release (images, or rows for CSV checks) where it is known; ``num_classes`` the
real number of classes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from harness.data import layout
from harness.data.ade20k import read_ade20k
from harness.data.bg_challenge import VARIANTS, read_bg_challenge, read_fg_masks
from harness.data.cifar import read_cifar10, read_cifar100
from harness.data.coco import read_coco
from harness.data.cub import REDO_SPLIT_FILE, read_cub, read_cub_localization
from harness.data.fileio import MalformedDataError
from harness.data.flowers import read_flowers, read_flowers_localization
from harness.data.folders import read_coco_crop
from harness.data.food import read_food
from harness.data.objectnet import read_objectnet, read_objectnet_folder_labels, read_objectnet_to_imagenet
from harness.data.openimages import (BOX_FILES, CLASS_FILES, HIERARCHY_FILE, LABEL_FILES, SEGMENTATION_FILES,
                                     box_csv, find_file, hierarchy_parents, iter_image_labels, iter_split_boxes,
                                     openimages_dir, read_class_descriptions, read_hierarchy, read_openimages_det,
                                     read_segmentations)
from harness.data.pets import read_pets, read_pets_trimaps
from harness.data.siscore import FACTORS, read_siscore
from harness.data.voc import read_voc_det, read_voc_seg

SAMPLE_KEEP = 64  # files a streamed check keeps for the decode sample


@dataclass(frozen=True)
class StreamCheck:
    """Result of a check that streams a file instead of building a record set."""

    path: Path
    rows: int
    files: tuple[Path, ...] = ()  # a few files the rows name, for the decode sample


@dataclass(frozen=True)
class SplitSpec:
    name: str
    load: Callable[[Path], Any]  # data_root -> a record set of harness.data.records, or a StreamCheck
    probe: tuple[str, ...]  # paths relative to the data root; any existing one means "split present"
    official: int | None = None
    required: bool = True
    balanced: str = ""  # non-empty: every class must hold as many images; the text says why when not


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    marker: str  # folder relative to the data root whose existence means "dataset present"
    description: str
    splits: tuple[SplitSpec, ...]
    num_classes: int | None = None


def _split(name: str, load: Callable[[Path], Any], probe: str | tuple[str, ...], official: int | None = None,
           required: bool = True, balanced: str = "") -> SplitSpec:
    return SplitSpec(name, load, (probe,) if isinstance(probe, str) else probe, official, required, balanced)


_BG_TEST = ("the Backgrounds Challenge test set (the GitHub release, bg_challenge_data) holds 450 images in every "
            "class; unequal classes are the uncleaned validation set of the training downloads (original.tar.gz "
            "and the other per-variant archives), which the challenge says to ignore: use the release's test data")


def _oi(*names: str) -> tuple[str, ...]:
    return tuple(f"{layout.OPEN_IMAGES}/{n}" for n in names)


def _stream_openimages_boxes(data_root: Path, split: str) -> StreamCheck:
    """Stream every box row of ``split`` and check its mid is a boxable class."""
    classes = read_class_descriptions(data_root)
    path = box_csv(data_root, split)
    rows, files = 0, {}
    for box in iter_split_boxes(data_root, split):
        if box.label not in classes:
            raise MalformedDataError(path, f"row {rows + 2}: LabelName {box.label} is not a boxable class")
        rows += 1
        if len(files) < SAMPLE_KEEP:
            files.setdefault(box.image_id, openimages_dir(data_root) / split / f"{box.image_id}.jpg")
    return StreamCheck(path, rows, tuple(files.values()))


def _stream_openimages_labels(data_root: Path, split: str) -> StreamCheck:
    path = find_file(openimages_dir(data_root), LABEL_FILES[split], f"the {split} image-level labels CSV")
    return StreamCheck(path, sum(1 for _ in iter_image_labels(data_root, split)))


def _openimages_masks(data_root: Path, split: str) -> StreamCheck:
    masks = read_segmentations(data_root, split)
    return StreamCheck(openimages_dir(data_root) / "masks" / split, len(masks),
                       tuple(m.mask for m in masks[:SAMPLE_KEEP]))


def _openimages_classes(data_root: Path) -> StreamCheck:
    path = find_file(openimages_dir(data_root), CLASS_FILES, "the boxable class descriptions CSV")
    return StreamCheck(path, len(read_class_descriptions(data_root)))


def _openimages_hierarchy(data_root: Path) -> StreamCheck:
    return StreamCheck(openimages_dir(data_root) / HIERARCHY_FILE,
                       len(hierarchy_parents(read_hierarchy(data_root))))


def _objectnet_mappings(data_root: Path) -> StreamCheck:
    """Both mapping files parse, and every image folder has a display label."""
    labels = read_objectnet_folder_labels(data_root)
    read_objectnet_to_imagenet(data_root)
    mapping_file = Path(data_root) / layout.OBJECTNET / "mappings" / "folder_to_objectnet_label.json"
    for folder in read_objectnet(data_root).classes:
        if folder not in labels:
            raise MalformedDataError(mapping_file, f"no label for image folder {folder!r}")
    return StreamCheck(mapping_file, len(labels))


_VOC12 = f"{layout.VOC}/VOC2012"
_VOC07 = f"{layout.VOC}/VOC2007"

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("coco", layout.COCO, "COCO 2017 instances (detection / instance segmentation)", (
        _split("train2017", partial(read_coco, split="train2017"),
               f"{layout.COCO}/annotations/instances_train2017.json", 118_287),
        _split("val2017", partial(read_coco, split="val2017"), f"{layout.COCO}/annotations/instances_val2017.json",
               5_000),
    ), num_classes=80),
    DatasetSpec("coco_crop", layout.COCO_CROP, "COCO-Crop object crops per category", (
        _split("train", partial(read_coco_crop, split="train"), f"{layout.COCO_CROP}/train"),
        _split("val", partial(read_coco_crop, split="val"), f"{layout.COCO_CROP}/val"),
    ), num_classes=80),
    DatasetSpec("ade20k", layout.ADE20K, "ADE20K scene parsing (ADEChallengeData2016)", (
        _split("training", partial(read_ade20k, split="training"), f"{layout.ADE20K}/images/training", 20_210),
        _split("validation", partial(read_ade20k, split="validation"), f"{layout.ADE20K}/images/validation", 2_000),
    ), num_classes=150),
    DatasetSpec("voc2012_seg", _VOC12, "PASCAL VOC 2012 segmentation (+ SegmentationClassAug)", (
        _split("train", partial(read_voc_seg, split="train", aug=False),
               f"{_VOC12}/ImageSets/Segmentation/train.txt", 1_464),
        _split("val", partial(read_voc_seg, split="val", aug=False), f"{_VOC12}/ImageSets/Segmentation/val.txt",
               1_449),
        _split("aug", partial(read_voc_seg, split="aug", aug=True), f"{_VOC12}/ImageSets/Segmentation/aug.txt",
               9_118, required=False),
        _split("trainaug", partial(read_voc_seg, split="trainaug", aug=True),
               f"{_VOC12}/ImageSets/Segmentation/trainaug.txt", 10_582, required=False),
    ), num_classes=21),
    DatasetSpec("voc2007_det", f"{_VOC07}/ImageSets/Main", "PASCAL VOC 2007 detection", (
        _split("trainval", partial(read_voc_det, year=2007, split="trainval"),
               f"{_VOC07}/ImageSets/Main/trainval.txt", 5_011),
        _split("test", partial(read_voc_det, year=2007, split="test"), f"{_VOC07}/ImageSets/Main/test.txt", 4_952),
    ), num_classes=20),
    DatasetSpec("voc2012_det", f"{_VOC12}/ImageSets/Main", "PASCAL VOC 2012 detection", (
        _split("trainval", partial(read_voc_det, year=2012, split="trainval"),
               f"{_VOC12}/ImageSets/Main/trainval.txt", 11_540),
    ), num_classes=20),
    DatasetSpec("bg_challenge", layout.BG_CHALLENGE, "Backgrounds Challenge (ImageNet-9 variants)", tuple(
        _split(f"{v}/val", partial(read_bg_challenge, variant=v, split="val"), f"{layout.BG_CHALLENGE}/{v}/val", 4_050,
               balanced=_BG_TEST)
        for v in VARIANTS) + tuple(
        _split(f"{v}/train", partial(read_bg_challenge, variant=v, split="train"),
               f"{layout.BG_CHALLENGE}/{v}/train", required=False) for v in VARIANTS) + (
        _split("fg_mask/val", partial(read_fg_masks, split="val"), f"{layout.BG_CHALLENGE}/fg_mask/val", 4_050),
    ), num_classes=9),
    DatasetSpec("siscore", layout.SISCORE, "SI-Score object size / rotation / location", tuple(
        _split(folder, partial(read_siscore, factor=folder), f"{layout.SISCORE}/{folder}", required=False)
        for folder in sorted(set(FACTORS.values()))
    ), num_classes=61),
    DatasetSpec("objectnet", layout.OBJECTNET, "ObjectNet 1.0", (
        _split("images", read_objectnet, f"{layout.OBJECTNET}/images", 50_000),
        _split("mappings", _objectnet_mappings, f"{layout.OBJECTNET}/mappings"),
    ), num_classes=313),
    DatasetSpec("openimages", layout.OPEN_IMAGES, "Open Images V6/V7 boxes, labels, masks", (
        _split("classes", _openimages_classes, _oi(*CLASS_FILES), 600),
        _split("hierarchy", _openimages_hierarchy, _oi(HIERARCHY_FILE), required=False),
        _split("validation boxes", partial(read_openimages_det, split="validation"),
               _oi(*BOX_FILES["validation"]), 41_620),
        _split("train boxes", partial(_stream_openimages_boxes, split="train"), _oi(*BOX_FILES["train"]),
               14_610_229, required=False),
        _split("validation labels", partial(_stream_openimages_labels, split="validation"),
               _oi(*LABEL_FILES["validation"]), required=False),
        _split("validation masks", partial(_openimages_masks, split="validation"),
               _oi(*SEGMENTATION_FILES["validation"]), required=False),
    ), num_classes=600),
    DatasetSpec("cub", layout.CUB, "CUB-200-2011 birds", (
        _split("train", partial(read_cub, split="train"), f"{layout.CUB}/images.txt", 5_994),
        _split("test", partial(read_cub, split="test"), f"{layout.CUB}/images.txt", 5_794),
        _split("redo test", partial(read_cub_localization, split="test"), f"{layout.CUB}/{REDO_SPLIT_FILE}", 1_000,
               required=False),
    ), num_classes=200),
    DatasetSpec("flowers102", layout.FLOWERS, "Oxford Flowers-102", (
        _split("train", partial(read_flowers, split="train"), f"{layout.FLOWERS}/setid.mat", 1_020),
        _split("val", partial(read_flowers, split="val"), f"{layout.FLOWERS}/setid.mat", 1_020),
        _split("test", partial(read_flowers, split="test"), f"{layout.FLOWERS}/setid.mat", 6_149),
        _split("redo test", partial(read_flowers_localization, split="test"), f"{layout.FLOWERS}/segmim", 1_020,
               required=False),
    ), num_classes=102),
    DatasetSpec("food101", layout.FOOD, "Food-101", (
        _split("train", partial(read_food, split="train"), f"{layout.FOOD}/meta/train.txt", 75_750),
        _split("test", partial(read_food, split="test"), f"{layout.FOOD}/meta/test.txt", 25_250),
    ), num_classes=101),
    DatasetSpec("pets", layout.PETS, "Oxford-IIIT Pets", (
        _split("trainval", partial(read_pets, split="trainval"), f"{layout.PETS}/annotations/trainval.txt", 3_680),
        _split("test", partial(read_pets, split="test"), f"{layout.PETS}/annotations/test.txt", 3_669),
        _split("trimaps test", partial(read_pets_trimaps, split="test"), f"{layout.PETS}/annotations/trimaps",
               3_669, required=False),
    ), num_classes=37),
    DatasetSpec("cifar10", layout.CIFAR10, "CIFAR-10 (python pickles)", (
        _split("train", partial(read_cifar10, split="train"), f"{layout.CIFAR10}/data_batch_1", 50_000),
        _split("test", partial(read_cifar10, split="test"), f"{layout.CIFAR10}/test_batch", 10_000),
    ), num_classes=10),
    DatasetSpec("cifar100", layout.CIFAR100, "CIFAR-100 (python pickles)", (
        _split("train", partial(read_cifar100, split="train"), f"{layout.CIFAR100}/train", 50_000),
        _split("test", partial(read_cifar100, split="test"), f"{layout.CIFAR100}/test", 10_000),
    ), num_classes=100),
)}
