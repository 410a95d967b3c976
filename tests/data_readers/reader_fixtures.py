"""Tiny data roots written in the official formats, for the reader and verify tests.

``make_root(root)`` writes every dataset below; each ``write_<dataset>`` writes one and
returns what the tests assert against.
"""
from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from harness.data import layout

W, H = 10, 8


def jpeg(path: Path, width: int = W, height: int = H, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((height, width, 3), value, np.uint8)
    arr[: height // 2, : width // 2] = 255 - value
    Image.fromarray(arr).save(path, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG")
    return path


def png_labels(path: Path, values: np.ndarray, palette: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(values.astype(np.uint8), mode="L")
    if palette:
        im = im.convert("P")
        im.putpalette([v for k in range(256) for v in (k, (k * 7) % 256, (k * 13) % 256)])
    im.save(path)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_csv(path: Path, header: list[str] | None, rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------- COCO / COCO-Crop
COCO_CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person"},
                   {"id": 18, "name": "dog", "supercategory": "animal"},
                   {"id": 90, "name": "toothbrush", "supercategory": "indoor"}]


def write_coco(root: Path) -> None:
    base = root / layout.COCO
    for split, ids in (("train2017", [1, 2, 3]), ("val2017", [7, 9])):
        images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": W, "height": H} for i in ids]
        for im in images:
            jpeg(base / split / im["file_name"])
        anns = [
            {"id": 10 * ids[0] + 1, "image_id": ids[0], "category_id": 18, "bbox": [1.0, 1.0, 4.0, 3.0], "area": 12.0,
             "iscrowd": 0, "segmentation": [[1, 1, 5, 1, 5, 4, 1, 4]]},
            {"id": 10 * ids[0] + 2, "image_id": ids[0], "category_id": 90, "bbox": [0, 0, 2, 2], "area": 4.0,
             "iscrowd": 1, "segmentation": {"size": [H, W], "counts": [0, 2, 6, 2, 70]}},
            {"id": 10 * ids[1] + 1, "image_id": ids[1], "category_id": 1, "bbox": [2, 2, 3, 3], "area": 9.0,
             "iscrowd": 0, "segmentation": [[2, 2, 5, 2, 5, 5]]},
        ]
        data = {"info": {}, "licenses": [], "images": images, "annotations": anns, "categories": COCO_CATEGORIES}
        write_text(base / "annotations" / f"instances_{split}.json", json.dumps(data))


def write_coco_crop(root: Path) -> None:
    base = root / layout.COCO_CROP
    jpeg(base / "train" / "dog" / "11.jpg")
    jpeg(base / "train" / "person" / "21.jpg")
    jpeg(base / "train" / "person" / "22.jpg")
    jpeg(base / "val" / "toothbrush" / "71.jpg")


# ---------------------------------------------------------------- ADE20K
def write_ade20k(root: Path) -> None:
    base = root / layout.ADE20K
    for split, prefix, n in (("training", "ADE_train", 2), ("validation", "ADE_val", 1)):
        for k in range(1, n + 1):
            stem = f"{prefix}_{k:08d}"
            jpeg(base / "images" / split / f"{stem}.jpg")
            labels = np.zeros((H, W), np.uint8)
            labels[2:, 3:] = 150
            labels[0, 0] = 1
            png_labels(base / "annotations" / split / f"{stem}.png", labels)


# ---------------------------------------------------------------- VOC
def voc_xml(image_id: str, objects: list[tuple[str, int, tuple[int, int, int, int]]]) -> str:
    parts = [f"<annotation><folder>VOC</folder><filename>{image_id}.jpg</filename>",
             f"<size><width>{W}</width><height>{H}</height><depth>3</depth></size><segmented>0</segmented>"]
    for name, difficult, (x0, y0, x1, y1) in objects:
        parts.append(f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
                     f"<difficult>{difficult}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
                     f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
    parts.append("</annotation>")
    return "".join(parts)


VOC_SEG = {"train": ["2007_000032", "2007_000039"], "val": ["2007_000033"], "aug": ["2008_000002"]}


def write_voc(root: Path) -> None:
    v12 = root / layout.VOC / "VOC2012"
    seg_lists = dict(VOC_SEG, trainaug=VOC_SEG["train"] + VOC_SEG["aug"])
    for split, ids in seg_lists.items():
        write_text(v12 / "ImageSets" / "Segmentation" / f"{split}.txt", "".join(f"{i}\n" for i in ids))
    labels = np.zeros((H, W), np.uint8)
    labels[2:6, 2:6] = 15
    labels[1, :] = 255
    for i in VOC_SEG["train"] + VOC_SEG["val"]:
        jpeg(v12 / "JPEGImages" / f"{i}.jpg")
        png_labels(v12 / "SegmentationClass" / f"{i}.png", labels, palette=True)
    for i in VOC_SEG["train"] + VOC_SEG["aug"]:
        jpeg(v12 / "JPEGImages" / f"{i}.jpg")
        png_labels(v12 / "SegmentationClassAug" / f"{i}.png", np.where(labels == 255, 0, labels))
    det = {"2007_000032": [("aeroplane", 0, (1, 2, 6, 7)), ("person", 1, (3, 3, 3, 4))], "2007_000039": []}
    write_text(v12 / "ImageSets" / "Main" / "trainval.txt", "".join(f"{i}\n" for i in det))
    for i, objects in det.items():
        write_text(v12 / "Annotations" / f"{i}.xml", voc_xml(i, objects))
    v07 = root / layout.VOC / "VOC2007"
    for split, ids in (("trainval", ["000005"]), ("test", ["000001", "000004"])):
        write_text(v07 / "ImageSets" / "Main" / f"{split}.txt", "".join(f"{i}\n" for i in ids))
        for i in ids:
            jpeg(v07 / "JPEGImages" / f"{i}.jpg")
            write_text(v07 / "Annotations" / f"{i}.xml", voc_xml(i, [("dog", 0, (1, 1, W, H))]))


# ---------------------------------------------------------------- Backgrounds Challenge
BG_CLASSES = ["00_dog", "01_bird", "02_wheeled vehicle"]


def write_bg_challenge(root: Path) -> None:
    from harness.data.bg_challenge import VARIANTS

    base = root / layout.BG_CHALLENGE
    for variant in VARIANTS:
        for k, cls in enumerate(BG_CLASSES):
            for n in range(2):
                jpeg(base / variant / "val" / cls / f"n0{k}_{n}.JPEG", value=40 * k + n)
    for k, cls in enumerate(BG_CLASSES):
        jpeg(base / "original" / "train" / cls / f"t{k}.JPEG")
        for n in range(2):
            path = base / "fg_mask" / "val" / cls / f"n0{k}_{n}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, np.eye(H, W, dtype=np.uint8))


# ---------------------------------------------------------------- SI-Score
SISCORE_HEADER = ["image_id", "x_coord", "y_coord", "area", "rotation", "foreground_class", "foreground_instance",
                  "background", "bg_resolution_width", "bg_resolution_height", "pct_inside_image"]


def write_siscore(root: Path) -> None:
    for factor in ("area", "rotation", "location20_area02_min0pc"):
        base = root / layout.SISCORE / factor
        rows = []
        for label, cls in enumerate(["banana", "zebra"]):
            for image_id in (10 * label + 3, 10 * label + 4):
                jpeg(base / cls / f"{image_id}.jpg")
                rows.append([image_id, 0.5, 0.5, 0.2, 1, label, 0, 3, 500, 500, 1.0])
        write_csv(base / "metadata.csv", SISCORE_HEADER, rows)


# ---------------------------------------------------------------- ObjectNet
def write_objectnet(root: Path) -> None:
    base = root / layout.OBJECTNET
    for folder in ("alarm_clock", "banana"):
        for name in ("0a1b", "2c3d"):
            jpeg(base / "images" / folder / f"{name}.png", width=12, height=9)
    write_text(base / "mappings" / "folder_to_objectnet_label.json",
               json.dumps({"alarm_clock": "Alarm clock", "banana": "Banana"}))
    write_text(base / "mappings" / "objectnet_to_imagenet_1k.json",
               json.dumps({"Alarm clock": "analog clock; digital clock", "Banana": "banana"}))


# ---------------------------------------------------------------- Open Images
OI_CLASSES = [["/m/01g317", "Person"], ["/m/0bt9lr", "Dog"], ["/m/09qck", "Banana, ripe"]]
OI_BOX = ["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax", "IsOccluded",
          "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"]
OI_CLICKS = ["XClick1X", "XClick2X", "XClick3X", "XClick4X", "XClick1Y", "XClick2Y", "XClick3Y", "XClick4Y"]
OI_SEG = ["MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax", "PredictedIoU",
          "Clicks"]
OI_TRAIN_IDS = ["000002b66c9c498e", "000002b97e5471a0"]
OI_VAL_IDS = ["0001eeaf4aed83f9", "0004886b7d043cfd"]


def write_openimages(root: Path) -> None:
    base = root / layout.OPEN_IMAGES
    write_csv(base / "class-descriptions-boxable.csv", None, OI_CLASSES)
    hierarchy = {"LabelName": "/m/0bl9f", "Subcategory": [
        {"LabelName": "/m/01g317"},
        {"LabelName": "/m/09qck"},
        {"LabelName": "/m/0bt9lr", "Part": [{"LabelName": "/m/01g317"}]}]}
    write_text(base / "bbox_labels_600_hierarchy.json", json.dumps(hierarchy))
    for i in OI_TRAIN_IDS:
        jpeg(base / "train" / f"{i}.jpg", width=20, height=10)
    for i in OI_VAL_IDS:
        jpeg(base / "validation" / f"{i}.jpg", width=20, height=10)
    write_csv(base / "oidv6-train-annotations-bbox.csv", OI_BOX + OI_CLICKS, [
        [OI_TRAIN_IDS[0], "xclick", "/m/01g317", 1, 0.1, 0.5, 0.2, 0.9, 0, 0, 0, 0, 0] + [0.1, 0.2, 0.3, 0.4] * 2,
        [OI_TRAIN_IDS[1], "xclick", "/m/0bt9lr", 1, 0.0, 1.0, 0.0, 1.0, 1, -1, 1, 0, 0] + [-1] * 8,
    ])
    write_csv(base / "validation-annotations-bbox.csv", OI_BOX, [
        [OI_VAL_IDS[0], "xclick", "/m/01g317", 1, 0.25, 0.75, 0.0, 0.5, 0, 0, 0, 0, 0],
        [OI_VAL_IDS[0], "xclick", "/m/09qck", 1, 0.0, 0.5, 0.5, 1.0, 0, 1, 0, 0, 0],
        [OI_VAL_IDS[1], "xclick", "/m/0bt9lr", 1, 0.1, 0.2, 0.1, 0.2, 0, 0, 1, 0, 0],
    ])
    write_csv(base / "validation-annotations-human-imagelabels-boxable.csv", ["ImageID", "Source", "LabelName",
                                                                              "Confidence"],
              [[OI_VAL_IDS[0], "verification", "/m/01g317", 1], [OI_VAL_IDS[1], "verification", "/m/09qck", 0]])
    mask_name = f"{OI_VAL_IDS[0]}_m01g317_a1b2c3d4.png"
    write_csv(base / "validation-annotations-object-segmentation.csv", OI_SEG,
              [[mask_name, OI_VAL_IDS[0], "/m/01g317", "a1b2c3d4", 0.25, 0.75, 0.0, 0.5, 0.8, "0.3 0.2 1"]])
    png_labels(base / "masks" / "validation" / mask_name, np.ones((10, 20), np.uint8) * 255)


# ---------------------------------------------------------------- CUB
CUB_IMAGES = ["001.Black_footed_Albatross/a_1.jpg", "001.Black_footed_Albatross/a_2.jpg",
              "002.Laysan_Albatross/b_1.jpg", "003.Sooty_Albatross/c_1.jpg"]


def write_cub(root: Path) -> None:
    base = root / layout.CUB
    write_text(base / "classes.txt", "1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n3 003.Sooty_Albatross\n")
    write_text(base / "images.txt", "".join(f"{k} {p}\n" for k, p in enumerate(CUB_IMAGES, 1)))
    write_text(base / "image_class_labels.txt", "1 1\n2 1\n3 2\n4 3\n")
    write_text(base / "train_test_split.txt", "1 1\n2 0\n3 1\n4 0\n")
    write_text(base / "bounding_boxes.txt", "".join(f"{k} 1.0 2.0 5.0 4.0\n" for k in range(1, 5)))
    write_text(base / "train_val_test_split.txt", "1 0\n2 2\n3 1\n4 2\n")
    for rel in CUB_IMAGES:
        jpeg(base / "images" / rel)
        mask = np.zeros((H, W), np.uint8)
        mask[2:6, 2:8] = 200
        mask[0, 0] = 100
        png_labels(base / "segmentations" / rel.replace(".jpg", ".png"), mask)


# ---------------------------------------------------------------- Flowers-102
def write_flowers(root: Path) -> None:
    from scipy.io import savemat

    base = root / layout.FLOWERS
    base.mkdir(parents=True, exist_ok=True)
    savemat(base / "imagelabels.mat", {"labels": np.array([[1, 2, 1, 2, 3, 3]], np.uint8)})
    savemat(base / "setid.mat", {"trnid": np.array([[1, 2]], np.uint16), "valid": np.array([[3, 4]], np.uint16),
                                 "tstid": np.array([[5, 6]], np.uint16)})
    for k in range(1, 7):
        jpeg(base / "jpg" / f"image_{k:05d}.jpg")
    for k in (1, 2):
        seg = np.zeros((H, W, 3), np.uint8)
        seg[..., 2] = 254
        seg[2:6, 2:8] = (200, 120, 40)
        path = base / "segmim" / f"segmim_{k:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(seg).save(path, quality=100)


# ---------------------------------------------------------------- Food-101
def write_food(root: Path) -> None:
    base = root / layout.FOOD
    write_text(base / "meta" / "classes.txt", "apple_pie\nbaby_back_ribs\n")
    write_text(base / "meta" / "train.txt", "apple_pie/1005649\nbaby_back_ribs/1008\nbaby_back_ribs/2032\n")
    write_text(base / "meta" / "test.txt", "apple_pie/1011328\n")
    for entry in ("apple_pie/1005649", "baby_back_ribs/1008", "baby_back_ribs/2032", "apple_pie/1011328"):
        jpeg(base / "images" / f"{entry}.jpg")


# ---------------------------------------------------------------- Pets
def write_pets(root: Path) -> None:
    base = root / layout.PETS
    write_text(base / "annotations" / "trainval.txt", "Abyssinian_100 1 1 1\nbasset_hound_1 2 2 1\n")
    write_text(base / "annotations" / "test.txt", "Abyssinian_1 1 1 1\nbasset_hound_10 2 2 1\nBengal_3 3 1 2\n")
    for name in ("Abyssinian_100", "basset_hound_1", "Abyssinian_1", "basset_hound_10", "Bengal_3"):
        jpeg(base / "images" / f"{name}.jpg")
        trimap = np.full((H, W), 2, np.uint8)
        trimap[2:6, 2:6] = 1
        trimap[2, 2:6] = 3
        png_labels(base / "annotations" / "trimaps" / f"{name}.png", trimap)


# ---------------------------------------------------------------- CIFAR
def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=2)


def cifar_batch(n: int, labels: list[int], label_key: bytes) -> dict:
    data = np.arange(n * 3072, dtype=np.int64).reshape(n, 3072).astype(np.uint8)
    return {b"batch_label": b"batch", b"data": data, label_key: labels, b"filenames": [b"x.png"] * n}


def write_cifar(root: Path) -> None:
    c10 = root / layout.CIFAR10
    _pickle(c10 / "batches.meta", {b"label_names": [f"c{k}".encode() for k in range(10)], b"num_vis": 3072})
    for k in range(1, 6):
        _pickle(c10 / f"data_batch_{k}", cifar_batch(2, [k, 9], b"labels"))
    _pickle(c10 / "test_batch", cifar_batch(3, [0, 1, 2], b"labels"))
    c100 = root / layout.CIFAR100
    _pickle(c100 / "meta", {b"fine_label_names": [f"f{k}".encode() for k in range(100)],
                            b"coarse_label_names": [f"g{k}".encode() for k in range(20)]})
    _pickle(c100 / "train", {**cifar_batch(4, [0, 5, 50, 99], b"fine_labels"), b"coarse_labels": [0, 1, 2, 3]})
    _pickle(c100 / "test", {**cifar_batch(2, [1, 2], b"fine_labels"), b"coarse_labels": [0, 1]})


WRITERS = (write_coco, write_coco_crop, write_ade20k, write_voc, write_bg_challenge, write_siscore, write_objectnet,
           write_openimages, write_cub, write_flowers, write_food, write_pets, write_cifar)


def make_root(root: Path) -> Path:
    """Every dataset of the catalog, tiny, in ``root``."""
    for writer in WRITERS:
        writer(root)
    return root
