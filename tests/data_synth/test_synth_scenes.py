from __future__ import annotations

import numpy as np
import pytest

from harness.data.layout import SYNTHETIC_CLASSES
from harness.data.synthetic.plan import render_scene, sample_scene
from harness.data.synthetic.polygons import mask_to_polygons, mask_to_rle
from harness.data.synthetic.scenes import (FAMILIES, STYLES, Placement, compose, preferred_family, render_background,
                                           render_object)


@pytest.mark.parametrize("category", SYNTHETIC_CLASSES)
def test_render_object_patch_is_tight_and_deterministic(category: str) -> None:
    a = render_object(category, 40, rotation=30.0, rng=5)
    b = render_object(category, 40, rotation=30.0, rng=5)
    assert a.rgb.shape[:2] == a.mask.shape and a.rgb.dtype == np.uint8
    assert a.mask[0].any() and a.mask[-1].any() and a.mask[:, 0].any() and a.mask[:, -1].any()
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.mask, b.mask)


def test_classes_differ_in_shape_and_texture() -> None:
    means = [render_object(c, 48, rng=0).rgb[render_object(c, 48, rng=0).mask].mean(0) for c in SYNTHETIC_CLASSES]
    dists = [np.abs(means[i] - means[j]).sum() for i in range(9) for j in range(i + 1, 9)]
    assert min(dists) > 10
    styled = render_object("zebra", 48, texture=STYLES[0], rng=1)
    assert styled.rgb[styled.mask].std(0).max() < 1.0  # "flat": one colour


def test_backgrounds_families_and_preferences() -> None:
    assert len(FAMILIES) == 9 and len({preferred_family(c) for c in SYNTHETIC_CLASSES}) == 9
    means = [render_background(f, 32, 32, np.random.default_rng(0)).reshape(-1, 3).mean(0) for f in FAMILIES]
    assert min(np.abs(means[i] - means[j]).sum() for i in range(9) for j in range(i + 1, 9)) > 15
    with pytest.raises(ValueError, match="unknown background family"):
        render_background("moon", 8, 8, np.random.default_rng(0))


def test_compose_occludes_in_order_and_reports_visible_masks() -> None:
    bg = np.zeros((40, 40, 3), np.uint8)
    big = render_object("orange", 30, rng=0)
    small = render_object("kite", 12, rng=0)
    comp = compose(bg, [Placement(big, 20, 20), Placement(small, 20, 20), Placement(small, 100, 100)])
    assert not (comp.masks[0] & comp.masks[1]).any()
    assert comp.masks[1].sum() == small.mask.sum()
    assert comp.masks[0].sum() < big.mask.sum()
    assert comp.boxes[2] is None and comp.area(2) == 0
    x0, y0, x1, y1 = comp.boxes[1]
    assert comp.masks[1][y0:y1, x0:x1].sum() == comp.area(1)


def test_biased_and_unbiased_sampling() -> None:
    rng = np.random.default_rng(0)
    biased = [sample_scene(rng, 64, 48, (1, 3), 0.85) for _ in range(400)]
    unbiased = [sample_scene(rng, 64, 48, (1, 3), None) for _ in range(400)]
    hit = lambda specs: np.mean([s.family == preferred_family(s.dominant) for s in specs])  # noqa: E731
    assert 0.78 < hit(biased) < 0.92 and hit(unbiased) < 0.2


def test_rendered_scene_instances_are_disjoint_and_nonempty() -> None:
    rng = np.random.default_rng(3)
    scene = render_scene(sample_scene(rng, 96, 72, (3, 5), 0.85, crowd_prob=1.0), rng)
    total = np.zeros(scene.image.shape[:2], int)
    for inst in scene.instances:
        assert inst.area >= 12
        total += inst.mask
    assert total.max() == 1 and any(i.iscrowd for i in scene.instances)


def test_polygon_and_rle_encoders() -> None:
    m = np.zeros((6, 7), bool)
    m[1:4, 2:5] = True
    m[2, 3] = False  # a hole: dropped from the polygon
    assert mask_to_polygons(m) == [[2.0, 1.0, 5.0, 1.0, 5.0, 4.0, 2.0, 4.0]]
    rle = mask_to_rle(m)
    assert rle["size"] == [6, 7] and sum(rle["counts"]) == 42 and sum(rle["counts"][1::2]) == m.sum()
