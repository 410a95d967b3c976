"""CAM masks to boxes, the boxes/masks files, the optional dense CRF."""
from __future__ import annotations

import json

import numpy as np
import pytest

from harness.core.errors import DataError
from harness.cam.boxes import (boxes_from_mask, crf_available, dense_crf, expand_box, keep_large_components,
                                     load_boxes, load_mask, mask_path, mask_to_boxes, save_boxes, save_mask)


def _two_blobs() -> np.ndarray:
    m = np.zeros((100, 100), np.float32)
    m[10:30, 10:40] = 1.0  # 20 x 30 object
    m[60:90, 50:70] = 0.8  # 30 x 20 object
    m[95:97, 0:2] = 0.9  # a 4-pixel speck (0.04% of the image)
    m[40:52, 80:92] = 0.3  # a weak 12 x 12 blob under 0.5 x max
    return m


def test_keep_large_components_drops_small_specks_only():
    m = keep_large_components(_two_blobs(), min_area=0.01)
    assert m[96, 1] == 0
    assert m[20, 20] == 1.0 and m[70, 60] == pytest.approx(0.8) and m[45, 85] == pytest.approx(0.3)


def test_mask_to_boxes_threshold_and_margin():
    boxes = mask_to_boxes(_two_blobs(), threshold=0.5, min_area=0.01, margin=0.0)
    assert boxes == [(0.1, 0.1, 0.4, 0.3), (0.5, 0.6, 0.7, 0.9)]
    grown = mask_to_boxes(_two_blobs(), threshold=0.5, min_area=0.01, margin=0.2)
    x1, y1, x2, y2 = grown[0]
    assert (x1, y1, x2, y2) == pytest.approx((0.04, 0.06, 0.46, 0.34))


def test_boxes_at_most_one_percent_are_dropped():
    m = np.zeros((100, 100), np.float32)
    m[0:10, 0:10] = 1.0  # exactly 1%: dropped
    m[50:61, 50:61] = 1.0  # 1.21%: kept
    assert mask_to_boxes(m, margin=0.0) == [(0.5, 0.5, 0.61, 0.61)]
    assert mask_to_boxes(np.zeros((8, 8), np.float32)) == []


def test_expand_box_clips_to_the_image():
    assert expand_box((0, 0, 50, 100), 100, 100, 0.2) == pytest.approx((0.0, 0.0, 0.6, 1.0))


def test_boxes_file_round_trip(tmp_path):
    boxes = {"000000000009.jpg": [(0.1, 0.2, 0.3, 0.4), (0.0, 0.0, 1.0, 1.0)], "b.jpg": []}
    path = tmp_path / "boxes.json"
    save_boxes(path, boxes)
    assert load_boxes(path) == boxes
    payload = json.loads(path.read_text())
    assert payload["format"] == "contracam-boxes" and payload["box_format"] == "xyxy" and payload["normalized"]


def test_boxes_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "contracam-boxes", "boxes": {"a.jpg": [[0.5, 0.1, 0.2, 0.3]]}}))
    with pytest.raises(DataError, match="bad.json"):
        load_boxes(bad)
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="x.json"):
        load_boxes(tmp_path / "x.json")


def test_mask_png_round_trip(tmp_path):
    mask = np.random.default_rng(0).random((16, 12)).astype(np.float32)
    path = mask_path(tmp_path / "masks", "coco/train2017/000000000009.jpg")
    assert path == tmp_path / "masks" / "coco" / "train2017" / "000000000009.png"
    save_mask(path, mask)
    loaded = load_mask(path)
    assert loaded.shape == (16, 12) and loaded.dtype == np.float32
    assert np.abs(loaded - mask).max() <= 0.5 / 255 + 1e-6
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="junk.png"):
        load_mask(tmp_path / "junk.png")


def test_dense_crf_snaps_a_blurry_mask_to_the_image_edges():
    assert crf_available()  # a project dependency: its absence is a broken set-up, not a skip
    image = np.full((40, 40, 3), 30, np.uint8)
    image[10:30, 10:30] = 220
    yy, xx = np.mgrid[:40, :40]
    prob = np.clip(1.2 - np.hypot(yy - 20, xx - 20) / 14, 0.05, 0.95).astype(np.float32)
    refined = dense_crf(image, prob)
    inside = refined[10:30, 10:30] > 0.5
    assert inside.mean() > (prob[10:30, 10:30] > 0.5).mean()
    assert (refined[:, :5] < 0.5).all()
    assert boxes_from_mask(prob, image, crf=True, margin=0.0) == [(0.25, 0.25, 0.75, 0.75)]


def test_tree_contours_add_a_box_per_hole():
    m = np.zeros((100, 100), np.float32)
    m[10:90, 10:90] = 1.0
    m[30:60, 30:60] = 0.0  # a hole of 9 % of the image
    assert mask_to_boxes(m, margin=0.0) == [(0.1, 0.1, 0.9, 0.9)]
    tree = mask_to_boxes(m, margin=0.0, contours="tree")
    assert len(tree) == 2 and (0.1, 0.1, 0.9, 0.9) in tree
    hole = next(b for b in tree if b != (0.1, 0.1, 0.9, 0.9))
    assert hole == pytest.approx((0.29, 0.29, 0.61, 0.61), abs=0.011)  # the hole's bounding rectangle
    with pytest.raises(ValueError, match="contours"):
        mask_to_boxes(m, contours="inner")


def test_official_binarize_boxes_the_whole_cleaned_support():
    m = np.zeros((100, 100), np.float32)
    m[10:40, 10:40] = 1.0   # a strong blob
    m[60:90, 60:90] = 0.2   # a weak one: under 0.5 x max when soft, part of the support when binary
    m[0:3, 95:98] = 0.9     # a speck below 1 % of the image: cleaned away either way
    assert boxes_from_mask(m, margin=0.0) == [(0.1, 0.1, 0.4, 0.4)]
    assert boxes_from_mask(m, margin=0.0, binarize="official") == [(0.1, 0.1, 0.4, 0.4), (0.6, 0.6, 0.9, 0.9)]
    m[60:90, 60:90] = 0.003  # 0.77 / 255: truncated to 0 in the 8-bit support, as the official ToPILImage
    assert boxes_from_mask(m, margin=0.0, binarize="official") == [(0.1, 0.1, 0.4, 0.4)]
    with pytest.raises(ValueError, match="binarize"):
        boxes_from_mask(m, binarize="hard")
