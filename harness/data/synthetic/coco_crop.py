"""COCO-Crop: object crops cut from a COCO layout, ``coco_crop/{train,val}/<name>/<ann id>.jpg``.

Built from the COCO files on disk (so it works on any COCO root): every non-crowd
instance whose area is at least 1% of its image, its box expanded by 20% of its width
and height on each side (clipped to the image), resized to a fixed shorter side.
"""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from harness.data import layout

from .common import save_jpeg

MIN_AREA_FRAC = 0.01
EXPAND = 0.2


def crop_box(bbox: list[float], width: int, height: int) -> tuple[int, int, int, int]:
    """The expanded, clipped integer crop box (x0, y0, x1, y1) of a COCO xywh box."""
    x, y, w, h = bbox
    x0, y0 = max(0, int(round(x - EXPAND * w))), max(0, int(round(y - EXPAND * h)))
    x1, y1 = min(width, int(round(x + w + EXPAND * w))), min(height, int(round(y + h + EXPAND * h)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def write_coco_crop(root: Path, side: int) -> dict[str, int]:
    counts = {}
    for split, coco_split in (("train", "train2017"), ("val", "val2017")):
        data = json.loads((root / layout.COCO / "annotations" / f"instances_{coco_split}.json").read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        images = {im["id"]: im for im in data["images"]}
        by_image: dict[int, list[dict]] = {}
        for ann in data["annotations"]:
            im = images[ann["image_id"]]
            if not ann["iscrowd"] and ann["area"] >= MIN_AREA_FRAC * im["width"] * im["height"]:
                by_image.setdefault(ann["image_id"], []).append(ann)
        n = 0
        for image_id in sorted(by_image):
            im = images[image_id]
            with Image.open(root / layout.COCO / coco_split / im["file_name"]) as f:
                pic = f.convert("RGB")
            for ann in by_image[image_id]:
                crop = pic.crop(crop_box(ann["bbox"], im["width"], im["height"]))
                scale = side / min(crop.size)
                size = (max(1, int(round(crop.size[0] * scale))), max(1, int(round(crop.size[1] * scale))))
                save_jpeg(crop.resize(size, Image.BILINEAR), root / layout.COCO_CROP / split / names[ann["category_id"]] / f"{ann['id']}.jpg")
                n += 1
        counts[f"coco_crop/{split} crops"] = n
    return counts
