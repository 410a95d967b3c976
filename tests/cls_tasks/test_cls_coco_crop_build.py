"""Building COCO-Crop from COCO instances: selection, geometry, determinism, resumption."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from harness.data.object_crops import MARKER, CropSpec, build_coco_split, expand_box

SPEC = CropSpec(size=32)


def _coco(root: Path) -> Path:
    """Two 100x80 images: a large object, a tiny one, a crowd region, and a second image."""
    rng = np.random.default_rng(0)
    for split in ("train2017", "val2017"):
        (root / "coco" / split).mkdir(parents=True)
        images = []
        for iid in (1, 2):
            name = f"{iid:012d}.jpg"
            Image.fromarray(rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)).save(root / "coco" / split / name)
            images.append({"id": iid, "file_name": name, "width": 100, "height": 80})
        poly = [[0, 0, 10, 0, 10, 10]]
        anns = [
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 20], "area": 700.0, "iscrowd": 0,
             "segmentation": poly},
            {"id": 12, "image_id": 1, "category_id": 2, "bbox": [60, 60, 5, 5], "area": 20.0, "iscrowd": 0,
             "segmentation": poly},
            {"id": 13, "image_id": 1, "category_id": 2, "bbox": [0, 0, 50, 50], "area": 2000.0, "iscrowd": 1,
             "segmentation": {"size": [80, 100], "counts": [0, 8000]}},
            {"id": 21, "image_id": 2, "category_id": 2, "bbox": [70, 0, 30, 60], "area": 1200.0, "iscrowd": 0,
             "segmentation": poly},
        ]
        cats = [{"id": 1, "name": "traffic light"}, {"id": 2, "name": "dog"}]
        (root / "coco" / "annotations").mkdir(exist_ok=True)
        (root / "coco" / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


def test_expand_box_clips_to_the_image():
    assert expand_box((10, 10, 40, 20), 100, 80, 0.2) == (2.0, 6.0, 58.0, 34.0)
    assert expand_box((70, 0, 30, 60), 100, 80, 0.2) == (64.0, 0.0, 100.0, 72.0)


def test_build_selects_crops_and_resumes(tmp_path: Path):
    data = _coco(tmp_path / "data")
    out = build_coco_split(data, tmp_path / "out", "train", SPEC)
    crops = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))
    assert crops == ["dog/13.jpg", "dog/21.jpg", "traffic light/11.jpg"]  # the tiny object is skipped
    with Image.open(out / "traffic light" / "11.jpg") as im:
        assert im.size == (int(32 * 56 / 28), 32)  # 56x28 expanded box, shorter side -> 32
    with Image.open(out / "dog" / "21.jpg") as im:
        assert im.size == (32, int(32 * 72 / 36))
    assert json.loads((out / MARKER).read_text())["crops"] == 3

    (out / MARKER).unlink()
    (out / "dog" / "21.jpg").unlink()
    before = (out / "traffic light" / "11.jpg").stat().st_mtime_ns
    build_coco_split(data, tmp_path / "out", "train", SPEC, workers=2)
    assert (out / "dog" / "21.jpg").is_file()
    assert (out / "traffic light" / "11.jpg").stat().st_mtime_ns == before  # finished crops are kept


def test_crowd_regions_can_be_left_out(tmp_path: Path):
    data = _coco(tmp_path / "data")
    out = build_coco_split(data, tmp_path / "out", "train", CropSpec(min_area=0.01, margin=0.2, size=32,
                                                                     include_crowd=False))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == ["dog/21.jpg", "traffic light/11.jpg"]


def test_build_is_deterministic(tmp_path: Path):
    data = _coco(tmp_path / "data")
    a = build_coco_split(data, tmp_path / "a", "val", SPEC, workers=2)
    b = build_coco_split(data, tmp_path / "b", "val", SPEC)
    for p in a.rglob("*.jpg"):
        assert p.read_bytes() == (b / p.relative_to(a)).read_bytes()
