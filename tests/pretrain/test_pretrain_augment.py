"""Batched two-view augmentation: determinism, geometry, colour operations."""
from __future__ import annotations

import colorsys

import pytest
import torch

from harness.core.errors import ConfigError
from harness.pretrain.augment import (StepRNG, TwoViewBatch, ViewAug, gaussian_blur, hsv_to_rgb, make_view,
                                      rgb_to_hsv, sample_crop_boxes)
from harness.pretrain.data import RawBatch, collate

PLAIN = dict(flip_p=0.0, jitter_p=0.0, gray_p=0.0, blur_p=0.0, solarize_p=0.0, mean=(0.0, 0.0, 0.0),
             std=(1.0, 1.0, 1.0))


def _raw(n: int = 6, seed: int = 0) -> RawBatch:
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        h, w = 30 + 3 * i, 50 - 2 * i
        items.append({"image": torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g), "index": i,
                      "meta": {"i": i}})
    return collate(items)


def test_views_are_deterministic_per_step_and_differ_between_steps() -> None:
    fn = TwoViewBatch.from_cfg({"size": 24, "blur_kernel": 5, "solarize_p": 0.3})
    raw = _raw()
    a, b, c = fn(raw, StepRNG(0, 5)), fn(raw, StepRNG(0, 5)), fn(raw, StepRNG(0, 6))
    assert a["view1"].shape == (6, 3, 24, 24) and a["view2"].shape == (6, 3, 24, 24)
    for k in ("view1", "view2", "box1", "box2", "flip1"):
        assert torch.equal(a[k], b[k])
    assert not torch.equal(a["view1"], c["view1"])
    assert not torch.equal(a["view1"], a["view2"])
    assert a["meta"] == [{"i": i} for i in range(6)]


def test_rank_slices_reproduce_the_single_process_batch() -> None:
    fn = TwoViewBatch.from_cfg({"size": 16, "blur_kernel": 5})
    raw = _raw(8)
    full = fn(raw, StepRNG(3, 11))
    halves = [fn(RawBatch(raw.images[r * 4:(r + 1) * 4], raw.sizes[r * 4:(r + 1) * 4], raw.index[r * 4:(r + 1) * 4],
                          raw.meta[r * 4:(r + 1) * 4]), StepRNG(3, 11, rank=r, world_size=2)) for r in range(2)]
    for k in ("view1", "view2", "box1"):
        assert torch.allclose(torch.cat([h[k] for h in halves]), full[k], atol=1e-6), k


def test_crop_boxes_stay_inside_image_and_region() -> None:
    raw = _raw(6)
    aug = ViewAug(size=16)
    for step in range(20):
        boxes = sample_crop_boxes(raw.sizes, aug, StepRNG(0, step))
        h, w = raw.sizes[:, 0].float(), raw.sizes[:, 1].float()
        assert (boxes[:, 0] >= -1e-4).all() and (boxes[:, 1] >= -1e-4).all()
        assert (boxes[:, 2] <= w + 1e-4).all() and (boxes[:, 3] <= h + 1e-4).all()
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (h * w)
        assert (area >= 0.08 - 1e-4).all() and (area <= 1 + 1e-4).all()
    regions = torch.tensor([[0.5, 0.5, 1.0, 1.0]] * 3 + [[float("nan")] * 4] * 3)
    v = make_view(raw, ViewAug(size=16, **PLAIN), StepRNG(0, 1), regions=regions)
    assert (v.box[:3, :2] >= 0.5 - 1e-5).all() and (v.box[:3, 2:] <= 1 + 1e-5).all()


def test_full_image_crop_reproduces_the_image_and_flip_mirrors_it() -> None:
    img = torch.arange(3 * 16 * 16, dtype=torch.float32).reshape(3, 16, 16).remainder(256).to(torch.uint8)
    raw = collate([{"image": img, "index": 0, "meta": {}}])
    aug = ViewAug(size=16, scale=(1.0, 1.0), ratio=(1.0, 1.0), **PLAIN)
    v = make_view(raw, aug, StepRNG(0, 0))
    assert torch.allclose(v.image[0] * 255, img.float(), atol=1e-3)
    flipped = make_view(raw, ViewAug(**{**aug.__dict__, "flip_p": 1.0}), StepRNG(0, 0))
    assert bool(flipped.flip[0]) and torch.allclose(flipped.image[0], v.image[0].flip(-1))


def test_padding_never_leaks_into_crops() -> None:
    small = torch.full((3, 10, 10), 200, dtype=torch.uint8)
    big = torch.zeros((3, 40, 40), dtype=torch.uint8)
    raw = collate([{"image": small, "index": 0, "meta": {}}, {"image": big, "index": 1, "meta": {}}])
    aug = ViewAug(size=12, **PLAIN)
    for step in range(10):
        v = make_view(raw, aug, StepRNG(0, step))
        assert torch.allclose(v.image[0], torch.full_like(v.image[0], 200 / 255), atol=1e-5)


def test_hsv_round_trip_and_hue_matches_colorsys() -> None:
    x = torch.rand(4, 3, 5, 5)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-5)
    r, g, b = x[0, :, 0, 0].tolist()
    assert torch.allclose(rgb_to_hsv(x)[0, :, 0, 0], torch.tensor(colorsys.rgb_to_hsv(r, g, b)), atol=1e-5)


def test_blur_keeps_constant_images_and_smooths_noise() -> None:
    flat = torch.full((2, 3, 12, 12), 0.3)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([0.5, 2.0]), 7), flat, atol=1e-6)
    noise = torch.rand(2, 3, 12, 12)
    assert gaussian_blur(noise, torch.tensor([2.0, 2.0]), 7).std() < noise.std()


def test_grayscale_and_solarize_applied_when_certain() -> None:
    raw = _raw(4)
    v = make_view(raw, ViewAug(size=8, **{**PLAIN, "gray_p": 1.0}), StepRNG(0, 0))
    assert torch.allclose(v.image[:, 0], v.image[:, 1]) and torch.allclose(v.image[:, 1], v.image[:, 2])
    base = make_view(raw, ViewAug(size=8, **PLAIN), StepRNG(0, 0)).image
    sol = make_view(raw, ViewAug(size=8, **{**PLAIN, "solarize_p": 1.0}), StepRNG(0, 0)).image
    assert torch.allclose(sol, torch.where(base >= 0.5, 1 - base, base))


def test_unknown_augmentation_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="blurr"):
        TwoViewBatch.from_cfg({"blurr": 1})


def test_parallel_row_chunks_give_the_same_views(monkeypatch) -> None:
    raw = _raw(16)
    fn = TwoViewBatch.from_cfg({"size": 16, "blur_kernel": 5, "solarize_p": 0.5})
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    chunked = fn(raw, StepRNG(0, 2))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    whole = fn(raw, StepRNG(0, 2))
    assert torch.equal(chunked["view1"], whole["view1"]) and torch.equal(chunked["view2"], whole["view2"])
