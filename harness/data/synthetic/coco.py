"""COCO 2017 layout: ``coco/{train2017,val2017}/*.jpg`` + ``annotations/instances_*.json``.

Both splits follow the training distribution (biased backgrounds), as COCO's val does.
Non-crowd instances carry pixel-edge polygons of their visible region; crowd clusters
carry uncompressed RLE with ``iscrowd=1``, as in the real files.
"""
from __future__ import annotations

from pathlib import Path

from harness.data import layout
from harness.data.layout import SYNTHETIC_CLASSES

from .common import save_jpeg, stream, write_json
from .plan import Scene, render_scene, sample_scene
from .polygons import mask_to_polygons, mask_to_rle
from .sizes import Sizes

# The real COCO category ids and supercategories of the nine class names.
COCO_IDS = {"backpack": 27, "banana": 52, "broccoli": 56, "kite": 38, "orange": 55, "pizza": 59,
            "toaster": 80, "vase": 86, "zebra": 24}
SUPERCATEGORY = {"backpack": "accessory", "banana": "food", "broccoli": "food", "kite": "sports", "orange": "food",
                 "pizza": "food", "toaster": "appliance", "vase": "indoor", "zebra": "animal"}
IMAGE_ID_OFFSET = {"train2017": 1, "val2017": 500001}


def categories() -> list[dict]:
    """The nine categories sorted by id, as COCO lists them."""
    return sorted(({"id": COCO_IDS[c], "name": c, "supercategory": SUPERCATEGORY[c]} for c in SYNTHETIC_CLASSES),
                  key=lambda d: d["id"])


def scene_annotations(scene: Scene, image_id: int, first_ann_id: int) -> list[dict]:
    anns = []
    for k, inst in enumerate(scene.instances):
        x0, y0, x1, y1 = inst.box
        seg = mask_to_rle(inst.mask) if inst.iscrowd else mask_to_polygons(inst.mask)
        anns.append({"id": first_ann_id + k, "image_id": image_id, "category_id": COCO_IDS[inst.category],
                     "segmentation": seg, "area": float(inst.area), "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                     "iscrowd": int(inst.iscrowd)})
    return anns


def write_coco(root: Path, seed: int, sz: Sizes, bias: float) -> dict[str, int]:
    base = root / layout.COCO
    counts: dict[str, int] = {}
    ann_id = 1
    for split, n in (("train2017", sz.coco[0]), ("val2017", sz.coco[1])):
        images, anns = [], []
        for i in range(n):
            rng = stream(seed, "coco", split, i)
            scene = render_scene(sample_scene(rng, sz.scene_w, sz.scene_h, sz.objects, bias, sz.crowd_prob), rng)
            image_id = IMAGE_ID_OFFSET[split] + i
            file_name = f"{image_id:012d}.jpg"
            save_jpeg(scene.image, base / split / file_name)
            images.append({"id": image_id, "file_name": file_name, "width": sz.scene_w, "height": sz.scene_h,
                           "license": 1, "coco_url": "", "flickr_url": "", "date_captured": ""})
            new = scene_annotations(scene, image_id, ann_id)
            ann_id += len(new)
            anns.extend(new)
        short = split.replace("2017", "")
        write_json({
            "info": {"description": "synthetic COCO-style scenes", "version": "1.0", "year": 2017,
                     "contributor": "harness.data.synthetic", "url": "", "date_created": ""},
            "licenses": [{"id": 1, "name": "generated", "url": ""}],
            "images": images, "annotations": anns, "categories": categories(),
        }, base / "annotations" / f"instances_{short}2017.json")
        counts[f"coco/{split} images"] = len(images)
        counts[f"coco/{split} annotations"] = len(anns)
    return counts
