"""PASCAL VOC layout: VOC2012 segmentation (+ SBD-style aug) and VOC2007/2012 detection.

VOC needs VOC class names, so each synthetic class is written as one of the 20 VOC
classes (:data:`VOC_NAME`, chosen by loose shape/semantic likeness; the other 11 VOC
classes never occur). Label values are VOC indices (0 = background, 1..20).

- ``VOC2012/JPEGImages/2012_%06d.jpg``; ``SegmentationClass`` palette PNGs with a
  255 band along every object boundary, ``SegmentationClassAug`` plain 'L' PNGs without
  it (for every image); ``ImageSets/Segmentation/{train,val,aug,trainaug}.txt`` where
  aug holds images outside train and val and trainaug = train + aug.
- ``VOC20{07,12}/Annotations/<id>.xml`` (1-based inclusive integer boxes; crowd clusters
  and objects less than a quarter visible are ``difficult``; boxes touching the border
  are ``truncated``) and ``ImageSets/Main/{train,val,trainval}.txt`` (+ ``test.txt``
  for 2007).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from harness.data import layout

from .common import save_jpeg, save_png, stream, write_lines
from .plan import Scene, render_scene, sample_scene
from .sizes import Sizes

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
VOC_NAME = {"backpack": "person", "banana": "boat", "broccoli": "pottedplant", "kite": "aeroplane", "orange": "sheep",
            "pizza": "diningtable", "toaster": "tvmonitor", "vase": "bottle", "zebra": "horse"}
IGNORE = 255


def voc_palette() -> list[int]:
    """The standard VOC colour map (256 entries, flat RGB)."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def class_map(scene: Scene) -> np.ndarray:
    lab = np.zeros(scene.image.shape[:2], np.uint8)
    for inst in scene.instances:
        lab[inst.mask] = VOC_CLASSES.index(VOC_NAME[inst.category]) + 1
    return lab


def with_borders(scene: Scene, lab: np.ndarray) -> np.ndarray:
    """``lab`` with IGNORE on pixels whose 3x3 neighbourhood spans two regions (objects or background)."""
    inst = np.zeros(lab.shape, np.int32)
    for k, it in enumerate(scene.instances):
        inst[it.mask] = k + 1
    p = np.pad(inst, 1, mode="edge")
    h, w = inst.shape
    edge = np.zeros((h, w), bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            edge |= p[dy:dy + h, dx:dx + w] != inst
    out = lab.copy()
    out[edge] = IGNORE
    return out


def annotation_xml(scene: Scene, folder: str, image_id: str, segmented: bool) -> bytes:
    H, W = scene.image.shape[:2]
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    src = ET.SubElement(root, "source")
    ET.SubElement(src, "database").text = f"The {folder} Database"
    ET.SubElement(src, "annotation").text = f"PASCAL {folder}"
    ET.SubElement(src, "image").text = "synthetic"
    size = ET.SubElement(root, "size")
    for tag, v in (("width", W), ("height", H), ("depth", 3)):
        ET.SubElement(size, tag).text = str(v)
    ET.SubElement(root, "segmented").text = str(int(segmented))
    for inst in scene.instances:
        x0, y0, x1, y1 = inst.box
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = VOC_NAME[inst.category]
        ET.SubElement(obj, "pose").text = "Unspecified"
        truncated = x0 == 0 or y0 == 0 or x1 == W or y1 == H
        ET.SubElement(obj, "truncated").text = str(int(truncated))
        difficult = inst.iscrowd or inst.area < 0.25 * inst.full_area
        ET.SubElement(obj, "difficult").text = str(int(difficult))
        bb = ET.SubElement(obj, "bndbox")
        for tag, v in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
            ET.SubElement(bb, tag).text = str(v)
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="utf-8") + b"\n"


def _render(seed: int, year: str, i: int, sz: Sizes, bias: float) -> Scene:
    rng = stream(seed, "voc", year, i)
    return render_scene(sample_scene(rng, sz.scene_w, sz.scene_h, sz.objects, bias, sz.crowd_prob), rng)


def write_voc(root: Path, seed: int, sz: Sizes, bias: float) -> dict[str, int]:
    base = root / layout.VOC
    palette = voc_palette()
    n_train, n_val, n_aug = sz.voc12
    ids12 = [f"2012_{i + 1:06d}" for i in range(n_train + n_val + n_aug)]
    seg_train, seg_val, aug = ids12[:n_train], ids12[n_train:n_train + n_val], ids12[n_train + n_val:]
    v12 = base / "VOC2012"
    for i, image_id in enumerate(ids12):
        scene = _render(seed, "2012", i, sz, bias)
        segmented = image_id not in aug
        save_jpeg(scene.image, v12 / "JPEGImages" / f"{image_id}.jpg")
        (v12 / "Annotations").mkdir(parents=True, exist_ok=True)
        (v12 / "Annotations" / f"{image_id}.xml").write_bytes(annotation_xml(scene, "VOC2012", image_id, segmented))
        lab = class_map(scene)
        save_png(lab, v12 / "SegmentationClassAug" / f"{image_id}.png")
        if segmented:
            save_png(with_borders(scene, lab), v12 / "SegmentationClass" / f"{image_id}.png", palette=palette)
    seg = v12 / "ImageSets" / "Segmentation"
    write_lines(seg_train, seg / "train.txt")
    write_lines(seg_val, seg / "val.txt")
    write_lines(aug, seg / "aug.txt")
    write_lines(seg_train + aug, seg / "trainaug.txt")
    main_val = seg_val + aug[len(aug) // 2:]
    main = v12 / "ImageSets" / "Main"
    write_lines([i for i in ids12 if i not in main_val], main / "train.txt")
    write_lines(sorted(main_val), main / "val.txt")
    write_lines(ids12, main / "trainval.txt")

    n_tv, n_test = sz.voc07
    ids07 = [f"{i + 1:06d}" for i in range(n_tv + n_test)]
    v07 = base / "VOC2007"
    for i, image_id in enumerate(ids07):
        scene = _render(seed, "2007", i, sz, bias)
        save_jpeg(scene.image, v07 / "JPEGImages" / f"{image_id}.jpg")
        (v07 / "Annotations").mkdir(parents=True, exist_ok=True)
        (v07 / "Annotations" / f"{image_id}.xml").write_bytes(annotation_xml(scene, "VOC2007", image_id, False))
    main = v07 / "ImageSets" / "Main"
    trainval, test = ids07[:n_tv], ids07[n_tv:]
    write_lines(trainval, main / "trainval.txt")
    write_lines(trainval[: n_tv // 2], main / "train.txt")
    write_lines(trainval[n_tv // 2:], main / "val.txt")
    write_lines(test, main / "test.txt")
    return {"VOC2012 images": len(ids12), "VOC2012 seg train": len(seg_train), "VOC2012 seg val": len(seg_val),
            "VOC2012 seg aug": len(aug), "VOC2007 trainval": n_tv, "VOC2007 test": n_test}
