"""The classification datasets a linear probe can run on, and their protocol splits.

| dataset        | train            | val (model selection)       | test            | metric         |
|----------------|------------------|-----------------------------|-----------------|----------------|
| coco_crop      | train2017 crops  | seeded subset of train      | val2017 crops   | top-1          |
| in9            | original/train   | seeded subset of train      | original/val    | top-1          |
| cub            | train split      | seeded subset of train      | test split      | top-1          |
| flowers        | trnid            | official valid              | tstid           | mean per class |
| food           | meta/train.txt   | seeded subset of train      | meta/test.txt   | top-1          |
| pets           | trainval         | seeded subset of trainval   | test            | mean per class |
| cifar10/100    | data_batch_*     | seeded subset of train      | test_batch      | top-1          |
| openimage_crops| train box crops  | seeded subset of train      | validation crops| top-1          |
| openimage_mini | train crops      | seeded subset of train      | val crops       | top-1          |

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
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.core import paths
from harness.core.errors import ConfigError
from harness.tasks.features import ImageSet


@dataclass(frozen=True)
class ProbeSplits:
    name: str
    train: ImageSet
    test: ImageSet
    val: ImageSet | None  # the official validation split, if the dataset has one
    metric: str
    border: int = 0  # pixels to cut from every image side before the transform


def _coco_crop(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    from harness.data.folders import read_coco_crop
    from harness.data.object_crops import coco_crop_root

    crops = coco_crop_root(root, cfg)
    return ProbeSplits("coco_crop", read_coco_crop(crops, "train"), read_coco_crop(crops, "val"), None, "top1")


def _in9(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    from harness.data.bg_challenge import read_bg_challenge

    return ProbeSplits("in9", read_bg_challenge(root, "original", "train"), read_bg_challenge(root, "original", "val"),
                       None, "top1")


def _cub(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    from harness.data.cub import read_cub

    return ProbeSplits("cub", read_cub(root, "train"), read_cub(root, "test"), None, "top1")


def _flowers(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    from harness.data.flowers import read_flowers

    return ProbeSplits("flowers", read_flowers(root, "train"), read_flowers(root, "test"), read_flowers(root, "val"),
                       "mean_per_class")


def _food(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    from harness.data.food import read_food

    return ProbeSplits("food", read_food(root, "train"), read_food(root, "test"), None, "top1")


def _pets(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    from harness.data.pets import read_pets

    return ProbeSplits("pets", read_pets(root, "trainval"), read_pets(root, "test"), None, "mean_per_class")


def _cifar10(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    from harness.data.cifar import read_cifar10

    return ProbeSplits("cifar10", read_cifar10(root, "train"), read_cifar10(root, "test"), None, "top1")


def _cifar100(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    from harness.data.cifar import read_cifar100

    return ProbeSplits("cifar100", read_cifar100(root, "train"), read_cifar100(root, "test"), None, "top1")


def _openimage_crops(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    from harness.data.folders import read_image_folder
    from harness.data.openimages import box_csv, openimages_dir, read_openimages_det
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


def _openimage_mini(root: Path, cfg: dict[str, Any]) -> ProbeSplits:
    from harness.data.openimage_mini.ensure import ensure
    from harness.data.openimage_mini.readers import read_crops

    built = ensure(root, cfg.get("spec"))
    return ProbeSplits("openimage_mini", read_crops(built, "train"), read_crops(built, "val"), None, "top1")


DATASETS: dict[str, Callable[[Path, dict[str, Any]], ProbeSplits]] = {
    "coco_crop": _coco_crop,
    "in9": _in9,
    "cub": _cub,
    "flowers": _flowers,
    "food": _food,
    "pets": _pets,
    "cifar10": _cifar10,
    "cifar100": _cifar100,
    "openimage_crops": _openimage_crops,
    "openimage_mini": _openimage_mini,
}


def load_splits(name: str, data_root: Path, cfg: dict[str, Any] | None = None) -> ProbeSplits:
    """The protocol splits of dataset ``name`` under ``data_root`` (``cfg``: the task config)."""
    if name not in DATASETS:
        raise ConfigError(f"unknown classification dataset {name!r} (known: {', '.join(sorted(DATASETS))})")
    return DATASETS[name](Path(data_root), cfg or {})
