"""The built-in datasets (:data:`BUILTIN`), each one :class:`harness.data.registry.Dataset`:
where it lives, what ``harness data verify`` reads in each split with the readers of this
package (a dataset counts as present when its ``marker`` folder exists; a present dataset
must have all its ``required`` splits, and ``official`` is the real release's size), and,
for classification datasets, the protocol splits of the frozen-feature probes:

| dataset (probe name)       | train            | val (model selection)       | test            | metric         |
|----------------------------|------------------|-----------------------------|-----------------|----------------|
| coco_crop                  | train2017 crops  | seeded subset of train      | val2017 crops   | top-1          |
| bg_challenge (in9)         | original/train   | seeded subset of train      | original/val    | top-1          |
| cub                        | train split      | seeded subset of train      | test split      | top-1          |
| flowers102 (flowers)       | trnid            | official valid              | tstid           | mean per class |
| food101 (food)             | meta/train.txt   | seeded subset of train      | meta/test.txt   | top-1          |
| pets                       | trainval         | seeded subset of trainval   | test            | mean per class |
| cifar10 / cifar100         | data_batch_*     | seeded subset of train      | test_batch      | top-1          |
| openimages (openimage_crops)| train box crops | seeded subset of train      | validation crops| top-1          |
| openimage_mini             | train crops      | seeded subset of train      | val crops       | top-1          |

``coco_crop`` reads ``<data_root>/coco_crop`` when it is there, else builds the crops from
the COCO instances into the harness cache (:func:`harness.data.object_crops.coco_crop_root`).
The seeded subset is ``val_size`` of the training split (a fraction or a count; 20 % by
default, as Ericsson et al.; ContraCAM used 10,000 COCO-Crop crops, 1,000 CUB, 740 Pets,
10 % Food and 5 % ImageNet-9 train, which a preset can set). ``openimage_crops`` are
object crops of Open Images boxes built like COCO-Crop (:mod:`harness.data.object_crops`;
``crops`` spec, optional ``openimage_labels`` list of class mids to keep, e.g. an
OpenImage-MINI class list), cached under ``<harness cache>/openimage_crops``.
``openimage_mini`` are the object crops of an OpenImage-MINI build (the one under the data
root, or one built from its Open Images files with the ``spec`` file of the config); the
labels follow its ``classes.json``, so a class without crops in a split is still a class.
The synthetic benchmark (:mod:`harness.data.synthetic`) writes every built-in dataset.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from harness.core import paths
from harness.data import layout
from harness.data.ade20k import read_ade20k
from harness.data.bg_challenge import VARIANTS, read_bg_challenge, read_fg_masks
from harness.data.cifar import read_cifar10, read_cifar100
from harness.data.coco import read_coco
from harness.data.cub import REDO_SPLIT_FILE, read_cub, read_cub_localization
from harness.data.fileio import MalformedDataError
from harness.data.flowers import read_flowers, read_flowers_localization
from harness.data.folders import read_coco_crop, read_image_folder
from harness.data.food import read_food
from harness.data.objectnet import read_objectnet, read_objectnet_folder_labels, read_objectnet_to_imagenet
from harness.data.openimages import (BOX_FILES, CLASS_FILES, HIERARCHY_FILE, LABEL_FILES, SEGMENTATION_FILES,
                                     box_csv, find_file, hierarchy_parents, iter_image_labels, iter_split_boxes,
                                     openimages_dir, read_class_descriptions, read_hierarchy, read_openimages_det,
                                     read_segmentations)
from harness.data.pets import read_pets, read_pets_trimaps
from harness.data.dataset_entry import Dataset, ProbeSplits, SplitSpec, StreamCheck
from harness.data.siscore import FACTORS, read_siscore
from harness.data.voc import read_voc_det, read_voc_seg

SAMPLE_KEEP = 64  # files a streamed check keeps for the decode sample


def _split(name: str, load: Callable[[Path], Any], probe: str | tuple[str, ...], official: int | None = None,
           required: bool = True, balanced: str = "") -> SplitSpec:
    return SplitSpec(name, load, (probe,) if isinstance(probe, str) else probe, official, required, balanced)


def _probe_coco_crop(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    from harness.data.object_crops import coco_crop_root

    crops = coco_crop_root(root, cfg, dev_run=cfg.get("dev_run"))  # a fast dev run crops K images per split
    return ProbeSplits("coco_crop", read_coco_crop(crops, "train"), read_coco_crop(crops, "val"), None, "top1")


def _probe_in9(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    return ProbeSplits("in9", read_bg_challenge(root, "original", "train"), read_bg_challenge(root, "original", "val"),
                       None, "top1")


def _probe_cub(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    return ProbeSplits("cub", read_cub(root, "train"), read_cub(root, "test"), None, "top1")


def _probe_flowers(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    return ProbeSplits("flowers", read_flowers(root, "train"), read_flowers(root, "test"), read_flowers(root, "val"),
                       "mean_per_class")


def _probe_food(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    return ProbeSplits("food", read_food(root, "train"), read_food(root, "test"), None, "top1")


def _probe_pets(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    return ProbeSplits("pets", read_pets(root, "trainval"), read_pets(root, "test"), None, "mean_per_class")


def _probe_cifar10(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    return ProbeSplits("cifar10", read_cifar10(root, "train"), read_cifar10(root, "test"), None, "top1")


def _probe_cifar100(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    return ProbeSplits("cifar100", read_cifar100(root, "train"), read_cifar100(root, "test"), None, "top1")


def _probe_openimage_crops(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    from harness.data.object_crops import CropSpec, build_crops, cache_root, image_stamp

    labels = sorted(cfg.get("openimage_labels") or [])
    spec = CropSpec.from_cfg(cfg.get("crops") or {})
    base = cache_root([box_csv(root, "train"), box_csv(root, "validation")], spec, paths.cache_dir() / "openimage_crops",
                      image_stamp([openimages_dir(root) / s for s in ("train", "validation")]))
    out = base / hashlib.sha256(json.dumps(labels).encode()).hexdigest()[:8]
    for split, folder in (("train", "train"), ("validation", "test")):
        build_crops(read_openimages_det(root, split, set(labels) or None), out / folder, spec,
                    int(cfg.get("build_workers", 1)))
    classes = sorted({d.name for folder in ("train", "test") for d in (out / folder).iterdir() if d.is_dir()})
    return ProbeSplits("openimage_crops", read_image_folder(out / "train", "openimage_crops_train", classes),
                       read_image_folder(out / "test", "openimage_crops_test", classes), None, "top1")


def _probe_openimage_mini(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    from harness.data.openimage_mini.ensure import ensure
    from harness.data.openimage_mini.readers import read_crops

    built = ensure(root, cfg.get("spec"), cfg.get("build_images"))
    return ProbeSplits("openimage_mini", read_crops(built, "train"), read_crops(built, "val"), None, "top1")


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

BUILTIN: tuple[Dataset, ...] = (
    Dataset("coco", layout.COCO, "COCO 2017 instances (detection / instance segmentation)", (
        _split("train2017", partial(read_coco, split="train2017"),
               f"{layout.COCO}/annotations/instances_train2017.json", 118_287),
        _split("val2017", partial(read_coco, split="val2017"), f"{layout.COCO}/annotations/instances_val2017.json",
               5_000),
    ), num_classes=80),
    Dataset("coco_crop", layout.COCO_CROP, "COCO-Crop object crops per category", (
        _split("train", partial(read_coco_crop, split="train"), f"{layout.COCO_CROP}/train"),
        _split("val", partial(read_coco_crop, split="val"), f"{layout.COCO_CROP}/val"),
    ), num_classes=80, probe=_probe_coco_crop,
       probe_reads=("coco_crop:train|coco:train2017", "coco_crop:val|coco:val2017")),
    Dataset("ade20k", layout.ADE20K, "ADE20K scene parsing (ADEChallengeData2016)", (
        _split("training", partial(read_ade20k, split="training"), f"{layout.ADE20K}/images/training", 20_210),
        _split("validation", partial(read_ade20k, split="validation"), f"{layout.ADE20K}/images/validation", 2_000),
    ), num_classes=150),
    Dataset("voc2012_seg", _VOC12, "PASCAL VOC 2012 segmentation (+ SegmentationClassAug)", (
        _split("train", partial(read_voc_seg, split="train", aug=False),
               f"{_VOC12}/ImageSets/Segmentation/train.txt", 1_464),
        _split("val", partial(read_voc_seg, split="val", aug=False), f"{_VOC12}/ImageSets/Segmentation/val.txt",
               1_449),
        _split("aug", partial(read_voc_seg, split="aug", aug=True), f"{_VOC12}/ImageSets/Segmentation/aug.txt",
               9_118, required=False),
        _split("trainaug", partial(read_voc_seg, split="trainaug", aug=True),
               f"{_VOC12}/ImageSets/Segmentation/trainaug.txt", 10_582, required=False),
    ), num_classes=21),
    Dataset("voc2007_det", f"{_VOC07}/ImageSets/Main", "PASCAL VOC 2007 detection", (
        _split("trainval", partial(read_voc_det, year=2007, split="trainval"),
               f"{_VOC07}/ImageSets/Main/trainval.txt", 5_011),
        _split("test", partial(read_voc_det, year=2007, split="test"), f"{_VOC07}/ImageSets/Main/test.txt", 4_952),
    ), num_classes=20),
    Dataset("voc2012_det", f"{_VOC12}/ImageSets/Main", "PASCAL VOC 2012 detection", (
        _split("trainval", partial(read_voc_det, year=2012, split="trainval"),
               f"{_VOC12}/ImageSets/Main/trainval.txt", 11_540),
    ), num_classes=20),
    Dataset("bg_challenge", layout.BG_CHALLENGE, "Backgrounds Challenge (ImageNet-9 variants)", tuple(
        _split(f"{v}/val", partial(read_bg_challenge, variant=v, split="val"), f"{layout.BG_CHALLENGE}/{v}/val", 4_050,
               balanced=_BG_TEST)
        for v in VARIANTS) + tuple(
        _split(f"{v}/train", partial(read_bg_challenge, variant=v, split="train"),
               f"{layout.BG_CHALLENGE}/{v}/train", required=False) for v in VARIANTS) + (
        _split("fg_mask/val", partial(read_fg_masks, split="val"), f"{layout.BG_CHALLENGE}/fg_mask/val", 4_050),
    ), num_classes=9, probe=_probe_in9, aliases=("in9",),
       probe_reads=("bg_challenge:original/train", "bg_challenge:original/val")),
    Dataset("siscore", layout.SISCORE, "SI-Score object size / rotation / location", tuple(
        _split(folder, partial(read_siscore, factor=folder), f"{layout.SISCORE}/{folder}", required=False)
        for folder in sorted(set(FACTORS.values()))
    ), num_classes=61),
    Dataset("objectnet", layout.OBJECTNET, "ObjectNet 1.0", (
        _split("images", read_objectnet, f"{layout.OBJECTNET}/images", 50_000),
        _split("mappings", _objectnet_mappings, f"{layout.OBJECTNET}/mappings"),
    ), num_classes=313),
    Dataset("openimages", layout.OPEN_IMAGES, "Open Images V6/V7 boxes, labels, masks", (
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
    ), num_classes=600, probe=_probe_openimage_crops, aliases=("openimage_crops",),
       probe_reads=("openimages:classes", "openimages:train boxes", "openimages:validation boxes")),
    Dataset("openimage_mini", layout.OPENIMAGE_MINI, "OpenImage-MINI object crops (built and verified by "
            "`harness data openimage-mini`)", probe=_probe_openimage_mini,
            probe_reads=("folder:openimage_mini|openimages:classes", "folder:openimage_mini|openimages:validation boxes")),
    Dataset("cub", layout.CUB, "CUB-200-2011 birds", (
        _split("train", partial(read_cub, split="train"), f"{layout.CUB}/images.txt", 5_994),
        _split("test", partial(read_cub, split="test"), f"{layout.CUB}/images.txt", 5_794),
        _split("redo test", partial(read_cub_localization, split="test"), f"{layout.CUB}/{REDO_SPLIT_FILE}", 1_000,
               required=False),
    ), num_classes=200, probe=_probe_cub, probe_reads=("cub:train", "cub:test")),
    Dataset("flowers102", layout.FLOWERS, "Oxford Flowers-102", (
        _split("train", partial(read_flowers, split="train"), f"{layout.FLOWERS}/setid.mat", 1_020),
        _split("val", partial(read_flowers, split="val"), f"{layout.FLOWERS}/setid.mat", 1_020),
        _split("test", partial(read_flowers, split="test"), f"{layout.FLOWERS}/setid.mat", 6_149),
        _split("redo test", partial(read_flowers_localization, split="test"), f"{layout.FLOWERS}/segmim", 1_020,
               required=False),
    ), num_classes=102, probe=_probe_flowers, aliases=("flowers",),
       probe_reads=("flowers102:train", "flowers102:val", "flowers102:test")),
    Dataset("food101", layout.FOOD, "Food-101", (
        _split("train", partial(read_food, split="train"), f"{layout.FOOD}/meta/train.txt", 75_750),
        _split("test", partial(read_food, split="test"), f"{layout.FOOD}/meta/test.txt", 25_250),
    ), num_classes=101, probe=_probe_food, aliases=("food",), probe_reads=("food101:train", "food101:test")),
    Dataset("pets", layout.PETS, "Oxford-IIIT Pets", (
        _split("trainval", partial(read_pets, split="trainval"), f"{layout.PETS}/annotations/trainval.txt", 3_680),
        _split("test", partial(read_pets, split="test"), f"{layout.PETS}/annotations/test.txt", 3_669),
        _split("trimaps test", partial(read_pets_trimaps, split="test"), f"{layout.PETS}/annotations/trimaps",
               3_669, required=False),
    ), num_classes=37, probe=_probe_pets, probe_reads=("pets:trainval", "pets:test")),
    Dataset("cifar10", layout.CIFAR10, "CIFAR-10 (python pickles)", (
        _split("train", partial(read_cifar10, split="train"), f"{layout.CIFAR10}/data_batch_1", 50_000),
        _split("test", partial(read_cifar10, split="test"), f"{layout.CIFAR10}/test_batch", 10_000),
    ), num_classes=10, probe=_probe_cifar10, probe_reads=("cifar10:train", "cifar10:test")),
    Dataset("cifar100", layout.CIFAR100, "CIFAR-100 (python pickles)", (
        _split("train", partial(read_cifar100, split="train"), f"{layout.CIFAR100}/train", 50_000),
        _split("test", partial(read_cifar100, split="test"), f"{layout.CIFAR100}/test", 10_000),
    ), num_classes=100, probe=_probe_cifar100, probe_reads=("cifar100:train", "cifar100:test")),
)
