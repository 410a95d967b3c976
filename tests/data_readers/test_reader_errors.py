"""A broken copy of each format fails with a ``DataError`` that names the broken file."""
from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from harness.data import layout
from harness.data.ade20k import read_ade20k
from harness.data.bg_challenge import read_bg_challenge, read_fg_masks
from harness.data.cifar import read_cifar10, read_cifar100
from harness.data.coco import read_coco
from harness.data.cub import read_cub, read_cub_localization
from harness.data.fileio import MalformedDataError, MissingDataError
from harness.data.flowers import read_flowers
from harness.data.folders import read_image_folder
from harness.data.food import read_food
from harness.data.objectnet import read_objectnet_to_imagenet
from harness.data.openimages import (iter_split_boxes, read_class_descriptions, read_openimages_det,
                                     read_segmentations)
from harness.data.pets import read_pets
from harness.data.siscore import read_siscore
from harness.data.voc import read_voc_det, read_voc_seg
from harness.core.errors import DataError
from reader_fixtures import CUB_IMAGES, OI_BOX, OI_CLICKS, OI_TRAIN_IDS, OI_VAL_IDS, write_csv

COCO_VAL = f"{layout.COCO}/annotations/instances_val2017.json"
VOC12 = f"{layout.VOC}/VOC2012"
OI = layout.OPEN_IMAGES


def edit_json(rel: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        data = json.loads((root / rel).read_text())
        change(data)
        (root / rel).write_text(json.dumps(data))
    return mutate


def truncate(rel: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        raw = (root / rel).read_bytes()
        (root / rel).write_bytes(raw[: len(raw) // 2])
    return mutate


def delete(rel: str) -> Callable[[Path], None]:
    return lambda root: (root / rel).unlink()


def replace_text(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        text = (root / rel).read_text()
        assert old in text, f"{old!r} not in {rel}"
        (root / rel).write_text(text.replace(old, new, 1))
    return mutate


def rewrite(rel: str, data: bytes | str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        (root / rel).write_bytes(data if isinstance(data, bytes) else data.encode())
    return mutate


def pickle_file(rel: str, obj: object) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        (root / rel).write_bytes(pickle.dumps(obj, protocol=2))
    return mutate


def savemat(rel: str, content: dict) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        from scipy.io import savemat as write

        write(root / rel, content)
    return mutate


class _Evil:
    def __reduce__(self):
        return (print, ("never",))


def _drop_last_click_column(root: Path) -> None:
    header = OI_BOX + OI_CLICKS[:-1]
    write_csv(root / OI / "oidv6-train-annotations-bbox.csv", header,
              [[OI_TRAIN_IDS[0], "xclick", "/m/01g317", 1, 0.1, 0.5, 0.2, 0.9, 0, 0, 0, 0, 0] + [0.5] * 7])


def _extra_validation_column(root: Path) -> None:
    write_csv(root / OI / "validation-annotations-bbox.csv", OI_BOX + ["Comment"],
              [[OI_VAL_IDS[0], "xclick", "/m/01g317", 1, 0.2, 0.5, 0.2, 0.9, 0, 0, 0, 0, 0, "x"]])


# (id, damage, read, exception type, path of the file the message must name)
CASES = [
    ("coco-missing-json", delete(COCO_VAL), lambda r: read_coco(r, "val"), MissingDataError, COCO_VAL),
    ("coco-truncated-json", truncate(COCO_VAL), lambda r: read_coco(r, "val"), MalformedDataError, COCO_VAL),
    ("coco-no-annotations-key", edit_json(COCO_VAL, lambda d: d.pop("annotations")), lambda r: read_coco(r, "val"),
     MalformedDataError, COCO_VAL),
    ("coco-bbox-length", edit_json(COCO_VAL, lambda d: d["annotations"][0].update(bbox=[1, 2, 3])),
     lambda r: read_coco(r, "val"), MalformedDataError, COCO_VAL),
    ("coco-unknown-category", edit_json(COCO_VAL, lambda d: d["annotations"][1].update(category_id=2)),
     lambda r: read_coco(r, "val"), MalformedDataError, COCO_VAL),
    ("coco-unknown-image", edit_json(COCO_VAL, lambda d: d["annotations"][1].update(image_id=8)),
     lambda r: read_coco(r, "val"), MalformedDataError, COCO_VAL),
    ("coco-missing-image", delete(f"{layout.COCO}/val2017/000000000009.jpg"), lambda r: read_coco(r, "val"),
     MissingDataError, f"{layout.COCO}/val2017/000000000009.jpg"),
    ("ade-missing-annotation", delete(f"{layout.ADE20K}/annotations/training/ADE_train_00000002.png"),
     lambda r: read_ade20k(r, "training"), MissingDataError,
     f"{layout.ADE20K}/annotations/training/ADE_train_00000002.png"),
    ("ade-orphan-annotation", delete(f"{layout.ADE20K}/images/training/ADE_train_00000001.jpg"),
     lambda r: read_ade20k(r, "training"), MalformedDataError,
     f"{layout.ADE20K}/annotations/training/ADE_train_00000001.png"),
    ("voc-missing-aug-label", delete(f"{VOC12}/SegmentationClassAug/2008_000002.png"),
     lambda r: read_voc_seg(r, "aug", aug=True), MissingDataError, f"{VOC12}/SegmentationClassAug/2008_000002.png"),
    ("voc-missing-list", delete(f"{VOC12}/ImageSets/Segmentation/val.txt"), lambda r: read_voc_seg(r, "val", False),
     MissingDataError, f"{VOC12}/ImageSets/Segmentation/val.txt"),
    ("voc-xml-no-difficult", replace_text(f"{VOC12}/Annotations/2007_000032.xml", "<difficult>1</difficult>", ""),
     lambda r: read_voc_det(r, 2012, "trainval"), MalformedDataError, f"{VOC12}/Annotations/2007_000032.xml"),
    ("voc-xml-fractional-box", replace_text(f"{VOC12}/Annotations/2007_000032.xml", "<xmin>1</xmin>",
                                            "<xmin>1.5</xmin>"),
     lambda r: read_voc_det(r, 2012, "trainval"), MalformedDataError, f"{VOC12}/Annotations/2007_000032.xml"),
    ("voc-xml-unknown-class", replace_text(f"{VOC12}/Annotations/2007_000032.xml", "aeroplane", "zebra"),
     lambda r: read_voc_det(r, 2012, "trainval"), MalformedDataError, f"{VOC12}/Annotations/2007_000032.xml"),
    ("voc-xml-truncated", truncate(f"{VOC12}/Annotations/2007_000039.xml"),
     lambda r: read_voc_det(r, 2012, "trainval"), MalformedDataError, f"{VOC12}/Annotations/2007_000039.xml"),
    ("bg-class-folder-name", lambda r: (r / layout.BG_CHALLENGE / "no_fg/val/01_bird").rename(
        r / layout.BG_CHALLENGE / "no_fg/val/bird"), lambda r: read_bg_challenge(r, "no_fg", "val"),
     MalformedDataError, f"{layout.BG_CHALLENGE}/no_fg/val/bird"),
    ("bg-class-number-gap", lambda r: (r / layout.BG_CHALLENGE / "no_fg/val/01_bird").rename(
        r / layout.BG_CHALLENGE / "no_fg/val/05_bird"), lambda r: read_bg_challenge(r, "no_fg", "val"),
     MalformedDataError, f"{layout.BG_CHALLENGE}/no_fg/val"),
    ("bg-missing-mask", delete(f"{layout.BG_CHALLENGE}/fg_mask/val/01_bird/n01_1.npy"), read_fg_masks,
     MissingDataError, f"{layout.BG_CHALLENGE}/fg_mask/val/01_bird/n01_1.npy"),
    ("siscore-missing-column", replace_text(f"{layout.SISCORE}/rotation/metadata.csv", "rotation,", "angle,"),
     lambda r: read_siscore(r, "rotation"), MalformedDataError, f"{layout.SISCORE}/rotation/metadata.csv"),
    ("siscore-wrong-class", replace_text(f"{layout.SISCORE}/area/metadata.csv", "3,0.5,0.5,0.2,1,0,",
                                         "3,0.5,0.5,0.2,1,1,"),
     lambda r: read_siscore(r, "area"), MalformedDataError, f"{layout.SISCORE}/area/metadata.csv"),
    ("siscore-missing-metadata", delete(f"{layout.SISCORE}/area/metadata.csv"), lambda r: read_siscore(r, "area"),
     MissingDataError, f"{layout.SISCORE}/area/metadata.csv"),
    ("objectnet-truncated-mapping", truncate(f"{layout.OBJECTNET}/mappings/objectnet_to_imagenet_1k.json"),
     read_objectnet_to_imagenet, MalformedDataError, f"{layout.OBJECTNET}/mappings/objectnet_to_imagenet_1k.json"),
    ("openimages-train-missing-column", _drop_last_click_column, lambda r: list(iter_split_boxes(r, "train")),
     MalformedDataError, f"{OI}/oidv6-train-annotations-bbox.csv"),
    ("openimages-validation-extra-column", _extra_validation_column,
     lambda r: list(iter_split_boxes(r, "validation")), MalformedDataError, f"{OI}/validation-annotations-bbox.csv"),
    ("openimages-box-outside", replace_text(f"{OI}/validation-annotations-bbox.csv", "0.25,0.75", "0.25,1.75"),
     lambda r: read_openimages_det(r, "validation"), MalformedDataError, f"{OI}/validation-annotations-bbox.csv"),
    ("openimages-unknown-label", replace_text(f"{OI}/validation-annotations-bbox.csv", "/m/09qck", "/m/zzz"),
     lambda r: read_openimages_det(r, "validation"), MalformedDataError, f"{OI}/validation-annotations-bbox.csv"),
    ("openimages-missing-image", delete(f"{OI}/validation/{OI_VAL_IDS[1]}.jpg"),
     lambda r: read_openimages_det(r, "validation"), MissingDataError, f"{OI}/validation/{OI_VAL_IDS[1]}.jpg"),
    ("openimages-missing-mask", delete(f"{OI}/masks/validation/{OI_VAL_IDS[0]}_m01g317_a1b2c3d4.png"),
     lambda r: read_segmentations(r, "validation"), MissingDataError,
     f"{OI}/masks/validation/{OI_VAL_IDS[0]}_m01g317_a1b2c3d4.png"),
    ("openimages-class-row", rewrite(f"{OI}/class-descriptions-boxable.csv", "/m/01g317,Person,extra\n"),
     read_class_descriptions, MalformedDataError, f"{OI}/class-descriptions-boxable.csv"),
    ("cub-class-out-of-range", replace_text(f"{layout.CUB}/image_class_labels.txt", "4 3", "4 7"),
     lambda r: read_cub(r, "test"), MalformedDataError, f"{layout.CUB}/image_class_labels.txt"),
    ("cub-missing-box-line", replace_text(f"{layout.CUB}/bounding_boxes.txt", "3 1.0 2.0 5.0 4.0\n", ""),
     lambda r: read_cub(r, "all"), MalformedDataError, f"{layout.CUB}/bounding_boxes.txt"),
    ("cub-missing-image", delete(f"{layout.CUB}/images/{CUB_IMAGES[2]}"), lambda r: read_cub(r, "train"),
     MissingDataError, f"{layout.CUB}/images/{CUB_IMAGES[2]}"),
    ("cub-missing-redo-split", delete(f"{layout.CUB}/train_val_test_split.txt"), read_cub_localization,
     MissingDataError, f"{layout.CUB}/train_val_test_split.txt"),
    ("flowers-missing-key", savemat(f"{layout.FLOWERS}/setid.mat", {"trnid": np.array([[1, 2]])}),
     lambda r: read_flowers(r, "test"), MalformedDataError, f"{layout.FLOWERS}/setid.mat"),
    ("flowers-garbage-mat", rewrite(f"{layout.FLOWERS}/imagelabels.mat", b"not a mat file at all" * 10),
     lambda r: read_flowers(r, "train"), MalformedDataError, f"{layout.FLOWERS}/imagelabels.mat"),
    ("food-unknown-class", replace_text(f"{layout.FOOD}/meta/test.txt", "apple_pie", "apple_tart"),
     lambda r: read_food(r, "test"), MalformedDataError, f"{layout.FOOD}/meta/test.txt"),
    ("pets-three-columns", replace_text(f"{layout.PETS}/annotations/test.txt", "Bengal_3 3 1 2", "Bengal_3 3 1"),
     lambda r: read_pets(r, "test"), MalformedDataError, f"{layout.PETS}/annotations/test.txt"),
    ("cifar-truncated-batch", truncate(f"{layout.CIFAR10}/data_batch_3"), lambda r: read_cifar10(r, "train"),
     MalformedDataError, f"{layout.CIFAR10}/data_batch_3"),
    ("cifar-label-out-of-range", pickle_file(f"{layout.CIFAR10}/test_batch", {
        b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}), lambda r: read_cifar10(r, "test"),
     MalformedDataError, f"{layout.CIFAR10}/test_batch"),
    ("cifar-code-in-pickle", pickle_file(f"{layout.CIFAR100}/test", {b"data": _Evil()}),
     lambda r: read_cifar100(r, "test"), MalformedDataError, f"{layout.CIFAR100}/test"),
    ("folder-without-images", lambda r: (r / "empty" / "cls").mkdir(parents=True),
     lambda r: read_image_folder(r / "empty", "empty"), MissingDataError, "empty"),
]


@pytest.mark.parametrize("damage, read, error, rel", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_file_is_named(broken_root: Path, damage, read, error, rel: str) -> None:
    damage(broken_root)
    with pytest.raises(error) as info:
        read(broken_root)
    assert isinstance(info.value, DataError)
    assert info.value.path == broken_root / rel
    assert str(broken_root / rel) in str(info.value)
