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

The seeded subset is ``val_size`` of the training split (a fraction or a count; 20 % by
default, as Ericsson et al.; ContraCAM used 10,000 COCO-Crop crops, 1,000 CUB, 740 Pets,
10 % Food and 5 % ImageNet-9 train, which a preset can set).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.errors import ConfigError
from harness.tasks.features import ImageSet


@dataclass(frozen=True)
class ProbeSplits:
    name: str
    train: ImageSet
    test: ImageSet
    val: ImageSet | None  # the official validation split, if the dataset has one
    metric: str
    border: int = 0  # pixels to cut from every image side before the transform


def _coco_crop(root: Path) -> ProbeSplits:
    from harness.data.folders import read_coco_crop

    return ProbeSplits("coco_crop", read_coco_crop(root, "train"), read_coco_crop(root, "val"), None, "top1")


def _in9(root: Path) -> ProbeSplits:
    from harness.data.bg_challenge import read_bg_challenge

    return ProbeSplits("in9", read_bg_challenge(root, "original", "train"), read_bg_challenge(root, "original", "val"),
                       None, "top1")


def _cub(root: Path) -> ProbeSplits:
    from harness.data.cub import read_cub

    return ProbeSplits("cub", read_cub(root, "train"), read_cub(root, "test"), None, "top1")


def _flowers(root: Path) -> ProbeSplits:
    from harness.data.flowers import read_flowers

    return ProbeSplits("flowers", read_flowers(root, "train"), read_flowers(root, "test"), read_flowers(root, "val"),
                       "mean_per_class")


def _food(root: Path) -> ProbeSplits:
    from harness.data.food import read_food

    return ProbeSplits("food", read_food(root, "train"), read_food(root, "test"), None, "top1")


def _pets(root: Path) -> ProbeSplits:
    from harness.data.pets import read_pets

    return ProbeSplits("pets", read_pets(root, "trainval"), read_pets(root, "test"), None, "mean_per_class")


def _cifar(which: str) -> Callable[[Path], ProbeSplits]:
    def load(root: Path) -> ProbeSplits:
        from harness.data.cifar import read_cifar

        return ProbeSplits(which, read_cifar(root, which, "train"), read_cifar(root, which, "test"), None, "top1")

    return load


DATASETS: dict[str, Callable[[Path], ProbeSplits]] = {
    "coco_crop": _coco_crop,
    "in9": _in9,
    "cub": _cub,
    "flowers": _flowers,
    "food": _food,
    "pets": _pets,
    "cifar10": _cifar("cifar10"),
    "cifar100": _cifar("cifar100"),
}


def load_splits(name: str, data_root: Path) -> ProbeSplits:
    """The protocol splits of dataset ``name`` under ``data_root``."""
    if name not in DATASETS:
        raise ConfigError(f"linear probe: unknown dataset {name!r} (known: {', '.join(sorted(DATASETS))})")
    return DATASETS[name](Path(data_root))
