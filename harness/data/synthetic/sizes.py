"""Size presets of the synthetic benchmark: image sides and item counts per dataset."""
from __future__ import annotations

from dataclasses import dataclass

from harness.core.errors import ConfigError


@dataclass(frozen=True)
class Sizes:
    name: str
    scene_w: int  # COCO / VOC / Open Images scene width and height
    scene_h: int
    ade_side: int
    objects: tuple[int, int]  # separate objects per scene (inclusive range)
    crowd_prob: float
    coco: tuple[int, int]  # train2017, val2017 images
    crop_side: int  # shorter side of COCO-Crop crops
    bg_side: int  # Backgrounds-Challenge image side
    bg_per_class: tuple[int, int]  # train, val images per class
    ade: tuple[int, int]  # training, validation
    voc12: tuple[int, int, int]  # segmentation train, segmentation val, aug-only images
    voc07: tuple[int, int]  # trainval, test
    openimages: tuple[int, int]  # train, validation
    shift_side: int  # ObjectNet / SI-Score image side
    objectnet_per_folder: int
    siscore_per_level: int
    cls_side: int  # CUB / Flowers / Food / Pets image side
    cls_per_class: tuple[int, int]  # train, test images per class
    cifar_train_per_batch: int  # per class, in each of the 5 batches
    cifar_test_per_class: int


TINY = Sizes(
    name="tiny", scene_w=64, scene_h=48, ade_side=64, objects=(1, 3), crowd_prob=0.2,
    coco=(16, 8), crop_side=32, bg_side=48, bg_per_class=(6, 4), ade=(10, 6), voc12=(6, 6, 6), voc07=(8, 8),
    openimages=(8, 6), shift_side=48, objectnet_per_folder=3, siscore_per_level=1, cls_side=48,
    cls_per_class=(3, 2), cifar_train_per_batch=1, cifar_test_per_class=2,
)

# Test splits hold hundreds of items per set (one item moves an accuracy by 0.1-0.4
# points); the classification sets keep few training images per class, as the real
# transfer sets do (CUB ~30, Flowers 10 + 10, Pets ~100 per class).
DEFAULT = Sizes(
    name="default", scene_w=128, scene_h=96, ade_side=112, objects=(2, 5), crowd_prob=0.08,
    coco=(480, 240), crop_side=64, bg_side=80, bg_per_class=(40, 100), ade=(300, 100), voc12=(120, 100, 120),
    voc07=(150, 150), openimages=(200, 100), shift_side=96, objectnet_per_folder=100, siscore_per_level=6, cls_side=96,
    cls_per_class=(30, 100), cifar_train_per_batch=20, cifar_test_per_class=100,
)

PRESETS = {s.name: s for s in (TINY, DEFAULT)}
DEFAULT_BIAS = 0.85


def get_sizes(size: str) -> Sizes:
    if size not in PRESETS:
        raise ConfigError(f"unknown synthetic size {size!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[size]
