from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from harness.data import layout
from harness.data.synthetic.coco import COCO_IDS
from harness.data.synthetic.sizes import TINY


def load(root: Path, split: str) -> COCO:
    return COCO(str(root / layout.COCO / "annotations" / f"instances_{split}.json"))


def test_coco_files_and_categories(synth_root: Path) -> None:
    for split, n in (("train2017", TINY.coco[0]), ("val2017", TINY.coco[1])):
        coco = load(synth_root, split)
        assert len(coco.imgs) == n
        assert {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())} == COCO_IDS
        for img in coco.imgs.values():
            path = synth_root / layout.COCO / split / img["file_name"]
            assert img["file_name"] == f"{img['id']:012d}.jpg"
            with Image.open(path) as im:
                assert im.size == (img["width"], img["height"]) and im.mode == "RGB"


def test_coco_masks_agree_with_boxes_and_areas(synth_root: Path) -> None:
    coco = load(synth_root, "train2017")
    anns = list(coco.anns.values())
    assert min(a["id"] for a in anns) >= 1 and len({a["id"] for a in anns}) == len(anns)
    assert any(a["iscrowd"] for a in anns), "the tiny set should contain a crowd region"
    per_image = {}
    for a in anns:
        per_image[a["image_id"]] = per_image.get(a["image_id"], 0) + 1
        m = coco.annToMask(a).astype(bool)
        ys, xs = np.nonzero(m)
        x, y, w, h = a["bbox"]
        assert abs(xs.min() - x) <= 1 and abs(ys.min() - y) <= 1
        assert abs(xs.max() + 1 - (x + w)) <= 1 and abs(ys.max() + 1 - (y + h)) <= 1
        if a["iscrowd"]:
            assert isinstance(a["segmentation"]["counts"], list)
            assert m.sum() == a["area"]
        else:
            assert all(len(p) >= 6 and len(p) % 2 == 0 for p in a["segmentation"])
            assert abs(m.sum() - a["area"]) <= 0.35 * a["area"] + 4  # holes are not in polygons
    assert max(per_image.values()) >= 2, "scenes must hold several objects"


def test_coco_crops_follow_the_protocol(synth_root: Path) -> None:
    for split, coco_split in (("train", "train2017"), ("val", "val2017")):
        data = json.loads((synth_root / layout.COCO / "annotations" / f"instances_{coco_split}.json").read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        images = {i["id"]: i for i in data["images"]}
        expected = {(names[a["category_id"]], f"{a['id']}.jpg") for a in data["annotations"]
                    if a["area"] >= 0.01 * images[a["image_id"]]["width"] * images[a["image_id"]]["height"]}
        found = {(p.parent.name, p.name) for p in (synth_root / layout.COCO_CROP / split).glob("*/*.jpg")}
        assert found == expected and found
        for cat, name in list(found)[:10]:
            with Image.open(synth_root / layout.COCO_CROP / split / cat / name) as im:
                assert min(im.size) == TINY.crop_side


def test_polygon_rasterisation_convention() -> None:
    rle = mask_utils.frPyObjects([[1.0, 1.0, 3.0, 1.0, 3.0, 3.0, 1.0, 3.0]], 5, 5)
    assert mask_utils.decode(mask_utils.merge(rle)).sum() == 4
