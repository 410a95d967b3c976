"""Every reader on a tiny root written in its official format: counts, labels, boxes, pairing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.data import layout
from harness.data.ade20k import ADE20K_CLASSES, read_ade20k
from harness.data.bg_challenge import read_bg_challenge, read_fg_masks
from harness.data.cifar import read_cifar10, read_cifar100
from harness.data.coco import read_coco
from harness.data.cub import read_cub, read_cub_localization
from harness.data.flowers import read_flowers, read_flowers_localization
from harness.data.folders import read_coco_crop, read_image_folder
from harness.data.food import read_food
from harness.data.masks import load_foreground_mask
from harness.data.objectnet import (load_objectnet_image, read_objectnet, read_objectnet_folder_labels,
                                    read_objectnet_to_imagenet)
from harness.data.openimages import (hierarchy_parents, iter_image_labels, iter_split_boxes, read_class_descriptions,
                                     read_hierarchy, read_openimages_det, read_segmentations)
from harness.data.pets import read_pets, read_pets_trimaps
from harness.data.siscore import read_siscore
from harness.data.voc import VOC_SEG_CLASSES, read_voc12aug_train, read_voc_det, read_voc_seg
from reader_fixtures import CUB_IMAGES, H, OI_TRAIN_IDS, OI_VAL_IDS, W


def test_coco_keeps_ids_crowds_and_empty_images(data_root: Path) -> None:
    coco = read_coco(data_root, "train")
    assert [c["id"] for c in coco.categories] == [1, 18, 90]
    assert [im.image_id for im in coco.images] == [1, 2, 3]
    first = coco.images[0]
    assert first.path == data_root / layout.COCO / "train2017" / "000000000001.jpg"
    assert [(o.category_id, o.iscrowd, o.bbox) for o in first.objects] == [(18, False, (1.0, 1.0, 4.0, 3.0)),
                                                                           (90, True, (0.0, 0.0, 2.0, 2.0))]
    assert isinstance(first.objects[1].segmentation, dict) and first.objects[0].extra == {"id": 11}
    assert coco.images[2].objects == []
    assert read_coco(data_root, "val2017").name == "coco_val2017"


def test_coco_crop_and_image_folder_share_one_label_space(data_root: Path) -> None:
    train, val = read_coco_crop(data_root, "train"), read_coco_crop(data_root, "val")
    assert train.classes == val.classes == ["dog", "person", "toothbrush"]
    assert [label for _, label in train.samples] == [0, 1, 1]
    assert [label for _, label in val.samples] == [2]
    plain = read_image_folder(data_root / layout.COCO_CROP / "train", name="crops")
    assert plain.classes == ["dog", "person"]


def test_ade20k_pairs_images_with_annotations(data_root: Path) -> None:
    ade = read_ade20k(data_root, "training")
    assert len(ADE20K_CLASSES) == 150 and ade.classes == list(ADE20K_CLASSES)
    assert ade.reduce_zero_label and ade.ignore_index == 255
    assert [(i.name, a.name) for i, a in ade.samples] == [("ADE_train_00000001.jpg", "ADE_train_00000001.png"),
                                                          ("ADE_train_00000002.jpg", "ADE_train_00000002.png")]
    assert len(read_ade20k(data_root, "val").samples) == 1


def test_voc_segmentation_lists_and_label_folders(data_root: Path) -> None:
    train = read_voc_seg(data_root, "train", aug=False)
    assert train.classes == list(VOC_SEG_CLASSES) and len(train.classes) == 21
    assert all(label.parent.name == "SegmentationClass" for _, label in train.samples)
    aug = read_voc_seg(data_root, "trainaug", aug=True)
    assert len(aug.samples) == 3 and all(label.parent.name == "SegmentationClassAug" for _, label in aug.samples)
    combined = read_voc12aug_train(data_root)
    assert [p.stem for p, _ in combined.samples] == ["2007_000032", "2007_000039", "2008_000002"]
    assert [lab.parent.name for _, lab in combined.samples] == ["SegmentationClass"] * 2 + ["SegmentationClassAug"]


def test_voc_detection_boxes_are_zero_based_and_difficult_flagged(data_root: Path) -> None:
    voc = read_voc_det(data_root, 2012, "trainval")
    objects = voc.images[0].objects
    assert [o.category_id for o in objects] == [1, 15]
    assert objects[0].bbox == (0.0, 1.0, 6.0, 6.0) and objects[0].extra["voc_box"] == (1, 2, 6, 7)
    assert objects[1].bbox == (2.0, 2.0, 1.0, 2.0) and objects[1].difficult and not objects[0].difficult
    assert objects[0].extra["pose"] == "Unspecified" and voc.images[1].objects == []
    assert [im.image_id for im in read_voc_det(data_root, 2007, "test").images] == ["000001", "000004"]


def test_bg_challenge_classes_sorted_by_number_with_spaces(data_root: Path) -> None:
    val = read_bg_challenge(data_root, "mixed_rand", "val")
    assert val.classes == ["dog", "bird", "wheeled vehicle"]
    assert [label for _, label in val.samples] == [0, 0, 1, 1, 2, 2]
    assert len(read_bg_challenge(data_root, "original", "train").samples) == 3
    masks = read_fg_masks(data_root)
    assert masks.mask_format == "npy" and len(masks.samples) == 6
    image, mask = masks.samples[5]
    assert mask.parent.name == image.parent.name == "02_wheeled vehicle" and mask.stem == image.stem
    assert load_foreground_mask(mask, "npy").sum() == min(W, H)


def test_siscore_labels_and_metadata(data_root: Path) -> None:
    si = read_siscore(data_root, "size")
    assert si.classes == ["banana", "zebra"] and [label for _, label in si.samples] == [0, 0, 1, 1]
    assert [m["image_id"] for m in si.metadata] == [3, 4, 13, 14]
    assert si.metadata[0]["area"] == 0.2 and si.metadata[0]["background"] == "3"
    assert read_siscore(data_root, "location").root.name == "location20_area02_min0pc"


def test_objectnet_folders_mappings_and_frame_crop(data_root: Path) -> None:
    on = read_objectnet(data_root)
    assert on.classes == ["alarm_clock", "banana"] and len(on.samples) == 4
    only = read_objectnet(data_root, ["banana"])
    assert only.classes == ["banana"] and {label for _, label in only.samples} == {0}
    assert read_objectnet_folder_labels(data_root)["alarm_clock"] == "Alarm clock"
    assert read_objectnet_to_imagenet(data_root)["Alarm clock"] == ["analog clock", "digital clock"]
    assert load_objectnet_image(on.samples[0][0]).size == (12 - 4, 9 - 4)


def test_openimages_csvs(data_root: Path) -> None:
    classes = read_class_descriptions(data_root)
    assert classes == {"/m/01g317": "Person", "/m/0bt9lr": "Dog", "/m/09qck": "Banana, ripe"}
    train = list(iter_split_boxes(data_root, "train"))
    assert [b.image_id for b in train] == OI_TRAIN_IDS and train[0].clicks[:2] == (0.1, 0.2)
    assert train[1].flags["IsTruncated"] == -1 and train[1].flags["IsGroupOf"] == 1
    val = read_openimages_det(data_root, "validation")
    assert [im.image_id for im in val.images] == OI_VAL_IDS
    person = val.images[0].objects[0]
    assert person.bbox == (5.0, 0.0, 10.0, 5.0) and person.category_id == 1 and person.extra["label"] == "/m/01g317"
    subset = read_openimages_det(data_root, "validation", labels={"/m/0bt9lr"})
    assert [im.image_id for im in subset.images] == [OI_VAL_IDS[1]]
    assert [lab.confidence for lab in iter_image_labels(data_root, "validation")] == [1.0, 0.0]
    masks = read_segmentations(data_root, "validation")
    assert masks[0].mask.parent == data_root / layout.OPEN_IMAGES / "masks" / "validation"
    assert hierarchy_parents(read_hierarchy(data_root)) == {"/m/01g317": set(), "/m/09qck": set(), "/m/0bt9lr": set()}


def test_openimages_class_descriptions_with_header(data_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "d"
    (root / layout.OPEN_IMAGES).mkdir(parents=True)
    (root / layout.OPEN_IMAGES / "oidv7-class-descriptions-boxable.csv").write_text(
        "LabelName,DisplayName\n/m/011k07,Tortoise\n")
    assert read_class_descriptions(root) == {"/m/011k07": "Tortoise"}


def test_cub_splits_boxes_and_redo_masks(data_root: Path) -> None:
    train, test = read_cub(data_root, "train"), read_cub(data_root, "test")
    assert len(train.classes) == 3 and train.classes[1] == "002.Laysan_Albatross"
    assert [label for _, label in train.samples] == [0, 1] and [label for _, label in test.samples] == [0, 2]
    assert train.metadata[0] == {"image_id": 1, "bbox": (1.0, 2.0, 5.0, 4.0)}
    assert len(read_cub(data_root, "all").samples) == 4
    loc = read_cub_localization(data_root, "test")
    assert [p.relative_to(loc.root / "images").as_posix() for p, _ in loc.samples] == [CUB_IMAGES[1], CUB_IMAGES[3]]
    mask = load_foreground_mask(loc.samples[0][1], loc.mask_format)
    assert mask.sum() == 24 and not mask[0, 0]


def test_flowers_mat_splits_and_redo_masks(data_root: Path) -> None:
    train = read_flowers(data_root, "train")
    assert [p.name for p, _ in train.samples] == ["image_00001.jpg", "image_00002.jpg"]
    assert [label for _, label in read_flowers(data_root, "test").samples] == [2, 2]
    assert train.classes == ["1", "2", "3"]
    loc = read_flowers_localization(data_root, "test")
    assert [p.name for p, _ in loc.samples] == ["image_00001.jpg", "image_00002.jpg"]
    mask = load_foreground_mask(loc.samples[0][1], loc.mask_format)
    assert mask[3, 4] and not mask[0, 0]


def test_food_and_pets(data_root: Path) -> None:
    food = read_food(data_root, "train")
    assert food.classes == ["apple_pie", "baby_back_ribs"] and [label for _, label in food.samples] == [0, 1, 1]
    pets = read_pets(data_root, "test")
    assert pets.classes == ["Abyssinian", "basset_hound", "Bengal"]
    assert [label for _, label in pets.samples] == [0, 1, 2]
    trimap = read_pets_trimaps(data_root, "trainval")
    mask = load_foreground_mask(trimap.samples[0][1], trimap.mask_format)
    assert mask.sum() == 16 and not mask[0, 0]


def test_cifar_pickles(data_root: Path) -> None:
    train = read_cifar10(data_root, "train")
    assert train.images.shape == (10, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.labels.tolist() == [1, 9, 2, 9, 3, 9, 4, 9, 5, 9] and train.classes[9] == "c9"
    assert train.images[0, 0, 1, 0] == 1 and train.images[0, 0, 0, 1] == 0  # channel-first rows -> HWC
    c100 = read_cifar100(data_root, "train")
    assert len(c100.classes) == 100 and c100.labels.tolist() == [0, 5, 50, 99]
    assert read_cifar10(data_root, "test").fingerprint() != train.fingerprint()


@pytest.mark.parametrize("reader, split", [(read_coco, "test"), (read_ade20k, "train2017"), (read_food, "val")])
def test_unknown_split_is_rejected(data_root: Path, reader, split: str) -> None:
    with pytest.raises(ValueError, match="split"):
        reader(data_root, split)
