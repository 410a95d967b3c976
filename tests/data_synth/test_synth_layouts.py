"""Structure of every non-COCO layout: files, keys, columns, label ranges, mask/box agreement."""
from __future__ import annotations

import csv
import json
import pickle
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from harness.data import layout
from harness.data.layout import SYNTHETIC_CLASSES
from harness.data.synthetic.openimages import BBOX_COLUMNS, MIDS
from harness.data.synthetic.sizes import TINY
from harness.data.synthetic.voc import VOC_CLASSES, VOC_NAME


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return list(rows[0].keys()) if rows else [], rows


def test_ade(synth_root: Path) -> None:
    base = synth_root / layout.ADE20K
    for split, short, n in (("training", "train", TINY.ade[0]), ("validation", "val", TINY.ade[1])):
        imgs = sorted((base / "images" / split).glob("*.jpg"))
        assert [p.stem for p in imgs] == [f"ADE_{short}_{i:08d}" for i in range(1, n + 1)]
        for p in imgs:
            lab = Image.open(base / "annotations" / split / f"{p.stem}.png")
            assert lab.mode == "L" and lab.size == Image.open(p).size
            values = np.unique(np.asarray(lab))
            assert values.max() <= 150 and (values <= 9).any() and (values >= 10).any()
    info = (base / "objectInfo150.txt").read_text().splitlines()
    assert info[0].split("\t") == ["Idx", "Ratio", "Train", "Val", "Name"] and len(info) == 151
    assert info[1].split("\t")[-1] == SYNTHETIC_CLASSES[0]


def test_voc_segmentation(synth_root: Path) -> None:
    v12 = synth_root / layout.VOC / "VOC2012"
    sets = {n: (v12 / "ImageSets" / "Segmentation" / f"{n}.txt").read_text().split() for n in ("train", "val", "aug", "trainaug")}
    assert sets["trainaug"] == sets["train"] + sets["aug"] and not set(sets["aug"]) & set(sets["val"])
    for image_id in sets["train"] + sets["val"]:
        seg = Image.open(v12 / "SegmentationClass" / f"{image_id}.png")
        assert seg.mode == "P"
        values = set(np.unique(np.asarray(seg)).tolist())
        assert 255 in values and values <= set(range(21)) | {255}
    for image_id in sets["trainaug"] + sets["val"]:
        aug = Image.open(v12 / "SegmentationClassAug" / f"{image_id}.png")
        assert aug.mode == "L" and np.asarray(aug).max() <= 20
        assert aug.size == Image.open(v12 / "JPEGImages" / f"{image_id}.jpg").size


def test_voc_detection(synth_root: Path) -> None:
    voc = synth_root / layout.VOC
    used = {VOC_CLASSES.index(v) for v in VOC_NAME.values()}
    assert len(used) == len(SYNTHETIC_CLASSES)
    difficult = 0
    for year, splits in (("VOC2007", ("trainval", "train", "val", "test")), ("VOC2012", ("trainval", "train", "val"))):
        ids = {s: (voc / year / "ImageSets" / "Main" / f"{s}.txt").read_text().split() for s in splits}
        assert sorted(ids["train"] + ids["val"]) == sorted(ids["trainval"])
        for image_id in ids["trainval"] + ids.get("test", []):
            root = ET.parse(voc / year / "Annotations" / f"{image_id}.xml").getroot()
            assert root.findtext("filename") == f"{image_id}.jpg" and root.findtext("folder") == year
            w, h = int(root.findtext("size/width")), int(root.findtext("size/height"))
            assert (voc / year / "JPEGImages" / f"{image_id}.jpg").is_file()
            for obj in root.iter("object"):
                assert obj.findtext("name") in VOC_CLASSES and obj.findtext("pose")
                assert obj.findtext("truncated") in ("0", "1")
                difficult += int(obj.findtext("difficult"))
                b = [int(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
                assert 1 <= b[0] <= b[2] <= w and 1 <= b[1] <= b[3] <= h
    assert difficult > 0


def test_openimages(synth_root: Path) -> None:
    base = synth_root / layout.OPEN_IMAGES
    cols, rows = read_csv(base / "oidv6-train-annotations-bbox.csv")
    assert tuple(cols) == BBOX_COLUMNS and rows
    vcols, vrows = read_csv(base / "validation-annotations-bbox.csv")
    assert tuple(vcols) == BBOX_COLUMNS[:13] and vrows
    for r in rows + vrows:
        assert len(r["ImageID"]) == 16 and int(r["ImageID"], 16) >= 0
        assert 0 <= float(r["XMin"]) < float(r["XMax"]) <= 1 and 0 <= float(r["YMin"]) < float(r["YMax"]) <= 1
        assert r["LabelName"] in MIDS.values()
    assert any(r["IsGroupOf"] == "1" for r in rows + vrows)
    assert {r["ImageID"] for r in rows} == {p.stem for p in (base / "train").glob("*.jpg")}
    lcols, labels = read_csv(base / "train-annotations-human-imagelabels-boxable.csv")
    assert lcols == ["ImageID", "Source", "LabelName", "Confidence"] and {r["Confidence"] for r in labels} == {"0", "1"}
    different_size = 0
    for split in ("train", "validation"):
        scols, segs = read_csv(base / f"{split}-annotations-object-segmentation.csv")
        assert scols == ["MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax",
                         "PredictedIoU", "Clicks"]
        for r in segs:
            assert r["MaskPath"] == f"{r['ImageID']}_{r['LabelName'].replace('/', '')}_{r['BoxID']}.png"
            mask = Image.open(base / "masks" / split / r["MaskPath"])
            image = Image.open(base / split / f"{r['ImageID']}.jpg")
            arr = np.asarray(mask).astype(bool)
            ys, xs = np.nonzero(arr)
            W, H = mask.size
            assert abs(xs.min() / W - float(r["BoxXMin"])) <= 2 / W  # within 2 px at the mask's resolution
            assert abs((ys.max() + 1) / H - float(r["BoxYMax"])) <= 2 / H
            different_size += mask.size != image.size
    assert different_size > 0
    desc = (base / "class-descriptions-boxable.csv").read_text().splitlines()
    assert desc[0].startswith("/m/") and len(desc) == len(SYNTHETIC_CLASSES)
    hierarchy = json.loads((base / "bbox_labels_600_hierarchy.json").read_text())
    assert {s["LabelName"] for s in hierarchy["Subcategory"]} == set(MIDS.values())


def test_objectnet(synth_root: Path) -> None:
    base = synth_root / layout.OBJECTNET
    folders = json.loads((base / "mappings" / "folder_to_objectnet_label.json").read_text())
    to_in = json.loads((base / "mappings" / "objectnet_to_imagenet_1k.json").read_text())
    assert set(folders) == {"backpack", "banana", "orange", "toaster", "vase"}
    assert set(to_in) == set(folders.values())
    for folder in folders:
        pngs = sorted((base / "images" / folder).glob("*.png"))
        assert len(pngs) == TINY.objectnet_per_folder
        arr = np.asarray(Image.open(pngs[0]))
        assert (arr[:2] == (255, 0, 0)).all() and (arr[:, -2:] == (255, 0, 0)).all()


def test_siscore(synth_root: Path) -> None:
    base = synth_root / layout.SISCORE
    for factor in ("area", "rotation", "location20_area02_min0pc"):
        cols, rows = read_csv(base / factor / "metadata.csv")
        assert {"image_path", "x_coord", "y_coord", "area", "rotation", "label"} <= set(cols)
        assert {r["label"] for r in rows} == set(SYNTHETIC_CLASSES)
        for r in rows:
            assert (base / factor / r["image_path"]).is_file() and r["image_path"].endswith(f"/{r['image_id']}.jpg")
        varied = {"area": "area", "rotation": "rotation", "location20_area02_min0pc": "x_coord"}[factor]
        assert len({r[varied] for r in rows}) > 1


def test_cub(synth_root: Path) -> None:
    base = synth_root / layout.CUB
    images = dict(line.split(" ", 1) for line in (base / "images.txt").read_text().splitlines())
    labels = dict(line.split() for line in (base / "image_class_labels.txt").read_text().splitlines())
    split = dict(line.split() for line in (base / "train_test_split.txt").read_text().splitlines())
    boxes = {line.split()[0]: list(map(float, line.split()[1:])) for line in (base / "bounding_boxes.txt").read_text().splitlines()}
    classes = (base / "classes.txt").read_text().splitlines()
    assert len(classes) == 9 and classes[0] == "1 001.Backpack"
    assert images.keys() == labels.keys() == split.keys() == boxes.keys()
    for i, rel in list(images.items())[:12]:
        seg = np.asarray(Image.open(base / "segmentations" / rel.replace(".jpg", ".png")))
        x, y, w, h = boxes[i]
        ys, xs = np.nonzero(seg > 127)
        assert abs(xs.min() - x) <= 1 and abs(ys.max() + 1 - (y + h)) <= 1
        assert rel.startswith(classes[int(labels[i]) - 1].split()[1] + "/")


def test_flowers(synth_root: Path) -> None:
    base = synth_root / layout.FLOWERS
    labels = scipy.io.loadmat(base / "imagelabels.mat")["labels"]
    setid = scipy.io.loadmat(base / "setid.mat")
    n = labels.shape[1]
    assert labels.shape == (1, n) and labels.dtype == np.float64 and labels.min() == 1 and labels.max() == 9
    ids = np.concatenate([setid[k].ravel() for k in ("trnid", "valid", "tstid")])
    assert all(setid[k].shape[0] == 1 for k in ("trnid", "valid", "tstid"))
    assert sorted(ids.astype(int).tolist()) == list(range(1, n + 1))
    assert (base / "jpg" / f"image_{n:05d}.jpg").is_file() and (base / "segmim" / f"segmim_{n:05d}.jpg").is_file()


def test_food_and_pets(synth_root: Path) -> None:
    food = synth_root / layout.FOOD
    assert (food / "meta" / "classes.txt").read_text().split() == list(SYNTHETIC_CLASSES)
    for split in ("train", "test"):
        for entry in (food / "meta" / f"{split}.txt").read_text().split():
            assert (food / "images" / f"{entry}.jpg").is_file()
    pets = synth_root / layout.PETS
    for split in ("trainval", "test"):
        for line in (pets / "annotations" / f"{split}.txt").read_text().splitlines():
            name, cls, species, breed = line.split()
            assert (pets / "images" / f"{name}.jpg").is_file()
            assert 1 <= int(cls) <= 9 and species == ("1" if name[0].isupper() else "2") and int(breed) >= 1
            tri = np.asarray(Image.open(pets / "annotations" / "trimaps" / f"{name}.png"))
            assert set(np.unique(tri).tolist()) == {1, 2, 3}


def test_cifar_pickles_read_like_the_real_ones(synth_root: Path) -> None:
    c10 = synth_root / layout.CIFAR10
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(c10 / name, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        assert d[b"data"].dtype == np.uint8 and d[b"data"].shape[1] == 3072
        assert len(d[b"labels"]) == len(d[b"data"]) and max(d[b"labels"]) < 9
    with open(c10 / "data_batch_1", "rb") as f:
        assert set(pickle.load(f, encoding="latin1")) == {"batch_label", "labels", "data", "filenames"}
    with open(c10 / "batches.meta", "rb") as f:
        assert pickle.load(f, encoding="bytes")[b"label_names"][0] == b"backpack"
    c100 = synth_root / layout.CIFAR100
    with open(c100 / "train", "rb") as f:
        d = pickle.load(f, encoding="bytes")
    assert {b"fine_labels", b"coarse_labels", b"data", b"filenames", b"batch_label"} == set(d)
    with open(c100 / "meta", "rb") as f:
        meta = pickle.load(f, encoding="bytes")
    assert len(meta[b"fine_label_names"]) == 9 and max(d[b"coarse_labels"]) < len(meta[b"coarse_label_names"])
