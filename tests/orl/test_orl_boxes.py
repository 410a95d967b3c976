"""Proposal filtering and the intra-RoI jitter."""
from __future__ import annotations

import random

import numpy as np

from harness_methods.orl.boxes import filter_proposals, iou_one_to_many, iou_pairwise, jitter_box


def test_iou_known_values():
    a = np.array([0, 0, 10, 10])
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 5, 10]])
    np.testing.assert_allclose(iou_one_to_many(a, b), [1.0, 50 / 150, 0.0, 0.5])
    np.testing.assert_allclose(iou_pairwise(a[None], b)[0], iou_one_to_many(a, b))


def test_filter_size_aspect_dedup_topn():
    boxes = np.array([
        [0, 0, 50, 50],     # kept
        [0, 0, 10, 50],     # too narrow (min_size 20)
        [0, 0, 100, 20],    # aspect 5 > 3
        [2, 2, 50, 50],     # IoU with the first ~0.85 > 0.5: duplicate
        [60, 60, 40, 40],   # kept
        [0, 60, 40, 30],    # kept
        [100, 0, 30, 30],   # would be kept but top_n = 3
    ])
    out = filter_proposals(boxes, (200, 200), min_size=20, max_aspect=3, iou_thr=0.5, top_n=3)
    np.testing.assert_array_equal(out, [[0, 0, 50, 50], [60, 60, 40, 40], [0, 60, 40, 30]])
    assert out.dtype == np.int32
    # without top_n the fourth survivor appears; without iou_thr the duplicate does
    assert len(filter_proposals(boxes, (200, 200), min_size=20, max_aspect=3, iou_thr=0.5, top_n=None)) == 4
    no_dedup = filter_proposals(boxes, (200, 200), min_size=20, max_aspect=3, iou_thr=None, top_n=None)
    assert [2, 2, 50, 50] in no_dedup.tolist()


def test_filter_never_empty():
    boxes = np.array([[0, 0, 5, 5], [1, 1, 4, 4]])
    np.testing.assert_array_equal(
        filter_proposals(boxes, (64, 48), min_size=20, max_aspect=3, iou_thr=0.5, top_n=10), [[0, 0, 5, 5]])
    np.testing.assert_array_equal(
        filter_proposals(np.zeros((0, 4)), (64, 48), min_size=20, max_aspect=3, iou_thr=0.5, top_n=10),
        [[0, 0, 64, 48]])


def test_jitter_respects_iou_and_image_bounds():
    rng = random.Random(0)
    size = (320, 240)
    moved_any = 0
    for _ in range(300):
        w, h = rng.randint(20, 200), rng.randint(20, 150)
        box = (rng.randint(0, size[0] - w), rng.randint(0, size[1] - h), w, h)
        out = jitter_box(box, size, rng)
        x, y, bw, bh = out
        assert 0 <= x and 0 <= y and x + bw <= size[0] and y + bh <= size[1]
        if tuple(out) != box:
            moved_any += 1
            assert iou_one_to_many(box, np.array([out]))[0] > 0.5
    assert moved_any > 250  # the jitter does move boxes


def test_jitter_falls_back_to_the_box_when_impossible():
    # a box filling the image with an IoU bound of 0.999: nothing but the box itself qualifies
    out = jitter_box((0, 0, 50, 50), (50, 50), random.Random(1), iou_thr=0.999, attempts=20)
    assert out == (0, 0, 50, 50)
