"""ContraCAM's augmentations pinned against plain re-implementations.

Covers the object-aware crop (one box per image, both views inside it, scale relative to
the box), background mixup (hard-mask rectangle, strip tiling, soft-mask blend, partner
permutation, FIFO queue, probability), Mixup / CutMix, the batch function's wiring, the
mixing losses and the recipe defaults of the reference implementation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.pretrain.augment import StepRNG, TwoViewBatch, ViewAug, sample_crop_boxes
from harness.pretrain.data import RawBatch
from harness_methods.contracam.augment import (BackgroundMixup, _sample_lam, background_image, cutmix, mask_rectangle,
                                       mixup)
from harness_methods.contracam.batches import ObjectAwareBatch, meta_reader, object_regions, view_masks

torch.set_num_threads(2)

PLAIN = dict(size=16, jitter_p=0.0, gray_p=0.0, blur_p=0.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


# ---------------------------------------------------------------- plain references
def ref_rectangle(hard: np.ndarray) -> tuple[int, int, int, int] | None:
    """Inclusive (top, bottom, left, right) of the True pixels."""
    ys, xs = np.nonzero(hard)
    if len(ys) == 0:
        return None
    return int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())


def ref_background(image: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray | None:
    """The rectangle filled pixel by pixel from the largest strip outside it, tiled from
    the strip's first row/column (ties: top, left, right, bottom)."""
    _, h, w = image.shape
    top, bottom, left, right = rect
    sizes = [("top", top * w), ("left", left * h), ("right", (w - 1 - right) * h), ("bottom", (h - 1 - bottom) * w)]
    best, area = sizes[0]
    for name, a in sizes[1:]:
        if a > area:
            best, area = name, a
    if area <= 0:
        return None
    out = image.copy()
    for y in range(top, bottom + 1):
        for x in range(left, right + 1):
            sy, sx = y, x
            if best == "top":
                sy = y % top
            elif best == "bottom":
                sy = bottom + 1 + y % (h - 1 - bottom)
            elif best == "left":
                sx = x % left
            else:
                sx = right + 1 + x % (w - 1 - right)
            out[:, y, x] = image[:, sy, sx]
    return out


class RefBackgroundMixup:
    """Background mixup written out with explicit loops, drawing from the generator in the
    documented order: one uniform per image with a rectangle, the partner permutation,
    then one queue index per mixed image whose partner has no background."""

    def __init__(self, cam_thres: float, aug_prob: float, queue_size: int) -> None:
        self.cam_thres, self.aug_prob, self.queue_size = cam_thres, aug_prob, queue_size
        self.queue: list[np.ndarray] = []

    def __call__(self, images: torch.Tensor, masks: torch.Tensor,
                 gen: torch.Generator) -> tuple[np.ndarray, list[bool]]:
        x, m = images.numpy().astype(np.float64), masks.numpy().astype(np.float64)
        bgs: list[np.ndarray | None] = []
        for i in range(len(x)):
            rect = ref_rectangle(masks[i, 0].numpy() >= self.cam_thres)
            if rect is None:
                bgs.append(None)
                continue
            if float(torch.rand((), generator=gen)) > self.aug_prob:
                bgs.append(None)
                continue
            bgs.append(ref_background(x[i], rect))
        partner = torch.randperm(len(x), generator=gen).tolist()
        out, applied = [], []
        for i in range(len(x)):
            bg = None
            if bgs[i] is not None:
                bg = bgs[partner[i]]
                if bg is None and self.queue:
                    bg = self.queue[int(torch.randint(len(self.queue), (1,), generator=gen))]
            if bg is None:
                out.append(x[i])
                applied.append(False)
            else:
                out.append(m[i] * x[i] + (1 - m[i]) * bg)
                applied.append(True)
            if bgs[i] is not None:
                self.queue.append(bgs[i])
                self.queue = self.queue[-self.queue_size:]
        return np.stack(out), applied


# ---------------------------------------------------------------- mask rectangle and background
def test_mask_rectangle_matches_reference_on_scattered_masks():
    rng = np.random.default_rng(0)
    for _ in range(30):
        hard = rng.random((9, 13)) < rng.uniform(0.0, 0.15)
        assert mask_rectangle(torch.from_numpy(hard)) == ref_rectangle(hard)
    hard = np.zeros((9, 13), bool)
    hard[1, 11] = hard[6, 2] = True  # two isolated pixels: the rectangle spans both
    assert mask_rectangle(torch.from_numpy(hard)) == (1, 6, 2, 11)


@pytest.mark.parametrize("rect,strip", [
    ((7, 10, 2, 14), "top"),        # object low in the image: 7 rows above
    ((0, 3, 3, 12), "bottom"),      # object at the top: 8 rows below
    ((1, 9, 9, 15), "left"),        # object at the right: 9 columns left
    ((2, 9, 0, 6), "right"),        # object at the left: 9 columns right
    ((3, 9, 4, 12), "top"),         # ties: top before left
    ((1, 9, 4, 11), "left"),        # ties: left before right
    ((0, 5, 7, 15), "bottom"),      # strip areas: rows x width (6 x 16) against columns x height (7 x 12)
    ((6, 11, 7, 15), "top"),
    ((6, 11, 0, 8), "top"),
])
def test_background_image_tiles_the_largest_strip_exactly(rect, strip):
    h, w = 12, 16
    image = torch.arange(3 * h * w, dtype=torch.float64).view(3, h, w)
    got = background_image(image, rect)
    want = ref_background(image.numpy(), rect)
    np.testing.assert_array_equal(got.numpy(), want)
    top, bottom, left, right = rect
    inside = np.zeros((h, w), bool)
    inside[top:bottom + 1, left:right + 1] = True
    # outside the rectangle nothing changes; inside, no pixel of the object survives
    np.testing.assert_array_equal(got.numpy()[:, ~inside], image.numpy()[:, ~inside])
    object_values = set(image.numpy()[0][inside].tolist())
    assert not object_values & set(got.numpy()[0][inside].tolist())
    source_rows = {int(v) // w for v in got.numpy()[0][inside].tolist()}
    source_cols = {int(v) % w for v in got.numpy()[0][inside].tolist()}
    expected = {"top": source_rows <= set(range(top)), "bottom": source_rows <= set(range(bottom + 1, h)),
                "left": source_cols <= set(range(left)), "right": source_cols <= set(range(right + 1, w))}
    assert expected[strip]


def test_background_image_is_none_without_any_strip():
    image = torch.rand(3, 6, 8)
    assert background_image(image, (0, 5, 0, 7)) is None
    only_right = background_image(image, (0, 5, 0, 5))  # two free columns on the right
    assert only_right is not None and torch.equal(only_right[:, :, 0], image[:, :, 6])


# ---------------------------------------------------------------- background mixup
def _soft_scene(b: int = 7, h: int = 12, w: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images and soft masks: rectangles of various places and strengths; image 0
    covers everything, image 1 is empty (below the threshold everywhere), image 2 sits
    exactly at the threshold on its rectangle."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, 3, h, w, generator=g)
    masks = torch.rand(b, 1, h, w, generator=g) * 0.15  # weak everywhere, below 0.2
    for i in range(3, b):
        t, l = int(torch.randint(0, h - 4, (1,), generator=g)), int(torch.randint(0, w - 4, (1,), generator=g))
        bh, bw = int(torch.randint(2, h - t, (1,), generator=g)), int(torch.randint(2, w - l, (1,), generator=g))
        masks[i, :, t:t + bh, l:l + bw] = 0.3 + 0.7 * torch.rand(1, bh, bw, generator=g)
    masks[0] = 0.5
    masks[1] = 0.1
    masks[2, :, 3:7, 5:9] = 0.2
    return images, masks


def test_background_mixup_matches_a_plain_reference_over_several_batches():
    images, masks = _soft_scene()
    gen, ref_gen = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    bgmix = BackgroundMixup(cam_thres=0.2, aug_prob=0.7, queue_size=3, generator=gen)
    ref = RefBackgroundMixup(cam_thres=0.2, aug_prob=0.7, queue_size=3)
    mixed_any = 0
    for step in range(6):
        x, m = images.roll(step, 0), masks.roll(step, 0)
        got, applied = bgmix(x, m)
        want, want_applied = ref(x, m, ref_gen)
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-6)
        assert applied.tolist() == want_applied
        assert len(bgmix.queue) == len(ref.queue)
        for a, b in zip(bgmix.queue, ref.queue):
            np.testing.assert_allclose(a.numpy(), b, atol=1e-6)
        mixed_any += sum(want_applied)
    assert mixed_any >= 10


def test_background_mixup_keeps_foreground_and_blends_with_the_soft_mask():
    """Constant images: image ``i`` has value ``10 + i`` and so has its background; the
    mix must be ``m * x_i + (1 - m) * x_j`` for a partner ``j``, the partners a permutation."""
    b, h, w = 6, 10, 14
    values = 10.0 + torch.arange(b, dtype=torch.float32)
    images = values.view(b, 1, 1, 1).expand(b, 3, h, w).clone()
    masks = torch.zeros(b, 1, h, w)
    masks[:, :, 3:7, 4:9] = 1.0            # the object: kept as it is
    masks[:, :, 3:7, 9:11] = 0.25          # soft edge: a quarter image, three quarters background
    mixed, applied = BackgroundMixup(cam_thres=0.2, aug_prob=1.0, generator=torch.Generator().manual_seed(3))(
        images, masks)
    assert applied.all()
    fg = masks[0, 0] == 1.0
    assert torch.equal(mixed[:, :, fg], images[:, :, fg])
    bg = masks[0, 0] == 0.0
    partner_value = mixed[:, 0, bg]
    assert torch.allclose(partner_value, partner_value[:, :1].expand_as(partner_value))
    partners = [int(round(float(v) - 10.0)) for v in partner_value[:, 0]]
    assert sorted(partners) == list(range(b))
    assert partners != list(range(b))  # backgrounds come from other images
    edge = masks[0, 0] == 0.25
    want = 0.25 * values[:, None] + 0.75 * (10.0 + torch.tensor(partners, dtype=torch.float32))[:, None]
    assert torch.allclose(mixed[:, 0, edge], want.expand(b, int(edge.sum())), atol=1e-5)


def test_background_mixup_threshold_is_inclusive_and_selects_the_object():
    image = torch.arange(3 * 8 * 10, dtype=torch.float32).view(1, 3, 8, 10)
    mask = torch.full((1, 1, 8, 10), 0.19)
    mask[0, 0, 5:8, 2:6] = 0.2  # exactly at the threshold: part of the hard mask
    bgmix = BackgroundMixup(cam_thres=0.2, aug_prob=1.0)
    (bg,) = bgmix.backgrounds(image, mask, torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(bg.numpy(), ref_background(image[0].numpy(), (5, 7, 2, 5)))
    (none,) = BackgroundMixup(cam_thres=0.21, aug_prob=1.0).backgrounds(image, mask)
    assert none is None  # nothing reaches 0.21: no rectangle, no background


def test_background_mixup_applies_with_probability_aug_prob():
    n = 600
    images = torch.rand(n, 3, 6, 6)
    masks = torch.zeros(n, 1, 6, 6)
    masks[:, :, 2:4, 2:4] = 1.0
    for prob in (0.2, 0.75):
        bgs = BackgroundMixup(aug_prob=prob).backgrounds(images, masks, torch.Generator().manual_seed(7))
        rate = sum(bg is not None for bg in bgs) / n
        assert abs(rate - prob) < 0.06, (prob, rate)


def test_background_mixup_queue_is_fifo_and_round_trips():
    images, masks = _soft_scene(b=5, seed=1)
    masks[3:] = 0.1
    masks[3:, :, 2:5, 2:6] = 0.9
    bgmix = BackgroundMixup(aug_prob=1.0, queue_size=4, generator=torch.Generator().manual_seed(0))
    for step in range(3):
        x = images + step
        bgmix(x, masks)
    own = [bg for bg in bgmix.backgrounds(images + 2, masks) if bg is not None]
    assert len(bgmix.queue) == 4
    # the newest entries are the last batch's backgrounds, in batch order
    for got, want in zip(list(bgmix.queue)[-len(own):], own):
        assert torch.allclose(got, want)
    state = bgmix.state_dict()
    fresh = BackgroundMixup(aug_prob=1.0, queue_size=4)
    fresh.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(fresh.queue, bgmix.queue))


# ---------------------------------------------------------------- Mixup and CutMix
def test_mixing_weight_is_max_of_a_symmetric_beta():
    x = torch.zeros(6000, 1, 1, 1)
    means = {}
    for alpha in (0.2, 1.0, 8.0):
        lam = mixup(x, alpha=alpha, generator=torch.Generator().manual_seed(0)).lam
        assert ((lam >= 0.5) & (lam <= 1.0)).all()
        means[alpha] = float(lam.mean())
    # Beta(1, 1) is uniform: max(l, 1 - l) is uniform on [0.5, 1]
    assert means[1.0] == pytest.approx(0.75, abs=0.01)
    lam = mixup(x, alpha=1.0, generator=torch.Generator().manual_seed(1)).lam
    assert float((lam < 0.625).float().mean()) == pytest.approx(0.25, abs=0.03)
    assert means[0.2] > means[1.0] + 0.08 and means[8.0] < means[1.0] - 0.08
    with pytest.raises(ValueError):
        _sample_lam(0.0, 3, None)


def test_mixup_blends_each_image_with_its_partner():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(7, 3, 5, 6, generator=g)
    out = mixup(x, alpha=0.7, generator=torch.Generator().manual_seed(9))
    assert sorted(out.partner.tolist()) == list(range(7))
    for i in range(7):
        lam = float(out.lam[i])
        want = lam * x[i] + (1 - lam) * x[int(out.partner[i])]
        assert torch.allclose(out.images[i], want, atol=1e-6)


def test_cutmix_pastes_one_rectangle_of_the_drawn_size_at_the_drawn_centre():
    b, h, w = 5, 12, 20
    x = torch.arange(b * 3 * h * w, dtype=torch.float32).view(b, 3, h, w)
    for seed in range(12):
        out = cutmix(x, alpha=1.0, generator=torch.Generator().manual_seed(seed))
        g = torch.Generator().manual_seed(seed)
        partner = torch.randperm(b, generator=g)
        lam = float(_sample_lam(1.0, 1, g)[0])
        cut = (1 - lam) ** 0.5
        cut_h, cut_w = int(h * cut), int(w * cut)
        cy, cx = int(torch.randint(h, (1,), generator=g)), int(torch.randint(w, (1,), generator=g))
        y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
        x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
        want = x.clone()
        want[:, :, y1:y2, x1:x2] = x[partner][:, :, y1:y2, x1:x2]
        assert torch.equal(out.partner, partner)
        assert torch.equal(out.images, want)
        assert torch.allclose(out.lam, torch.full((b,), 1 - (y2 - y1) * (x2 - x1) / (h * w)))


# ---------------------------------------------------------------- object-aware crop
def _raw(h: int = 40, w: int = 64, n: int = 4) -> tuple[RawBatch, list[list[tuple[float, ...]]]]:
    """Black images with box A painted in channel 0 and box B in channel 1 (normalised
    xyxy); images 0 and 2 have both boxes, image 1 only B, image 3 none."""
    a = (0.125, 0.25, 0.5, 0.75)
    b = (0.625, 0.1, 0.9375, 0.5)
    images = torch.zeros(n, 3, h, w, dtype=torch.uint8)
    for box, ch in ((a, 0), (b, 1)):
        x0, y0, x1, y1 = round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)
        images[:, ch, y0:y1, x0:x1] = 200
    boxes = [[a, b], [b], [a, b], []]
    masks = torch.arange(24, dtype=torch.float32).view(1, 24).expand(24, 24) / 23 * 255
    meta = [{"boxes": boxes[i], "mask": masks.round().to(torch.uint8)} for i in range(n)]
    return RawBatch(images, torch.tensor([[h, w]] * n), torch.arange(n), meta), boxes


def test_object_regions_draw_one_box_uniformly_in_xyxy_order():
    raw, boxes = _raw()
    raw.meta[0]["boxes"] = [(0.0, 0.0, 0.3, 0.4), (0.1, 0.5, 0.6, 0.9), (0.7, 0.2, 0.95, 0.8)]
    counts = [0, 0, 0]
    for step in range(300):
        got = object_regions(raw, StepRNG(4, step))
        u = StepRNG(4, step).rand(len(raw))
        for i, meta in enumerate(raw.meta):
            if not meta["boxes"]:
                assert torch.isnan(got[i]).all()
                continue
            k = min(int(u[i] * len(meta["boxes"])), len(meta["boxes"]) - 1)
            assert got[i].tolist() == pytest.approx(list(meta["boxes"][k]))
            if i == 0:
                counts[k] += 1
    assert min(counts) > 70 and max(counts) < 130, counts


def test_both_views_are_cropped_inside_the_same_chosen_box():
    raw, boxes = _raw()
    aug = ViewAug(**PLAIN, scale=(0.2, 0.6))
    views = TwoViewBatch([aug, aug], regions=object_regions)
    h, w = 40, 64
    used = set()
    for step in range(12):
        rng = StepRNG(1, step)
        regions = object_regions(raw, StepRNG(1, step))
        out = views(raw, rng)
        for i in range(len(raw)):
            reg = regions[i]
            if torch.isnan(reg).any():
                rx0, ry0, rx1, ry1 = 0.0, 0.0, 1.0, 1.0
            else:
                rx0, ry0, rx1, ry1 = reg.tolist()
            region_area = (rx1 - rx0) * w * (ry1 - ry0) * h
            for k in (1, 2):
                x0, y0, x1, y1 = out[f"box{k}"][i].tolist()
                assert rx0 - 1e-5 <= x0 < x1 <= rx1 + 1e-5 and ry0 - 1e-5 <= y0 < y1 <= ry1 + 1e-5
                ratio = (x1 - x0) * w * (y1 - y0) * h / region_area
                assert 0.2 - 1e-3 <= ratio <= 0.6 + 1e-3, ratio  # scale relative to the box's area
                view = out[f"view{k}"][i]
                if torch.isnan(reg).any():
                    continue
                painted = 0 if tuple(reg.tolist()) == pytest.approx(boxes[i][0]) and len(boxes[i]) == 2 else 1
                used.add(painted)
                assert (view[painted] > 0).all() and (view[1 - painted] == 0).all()
    assert used == {0, 1}


def test_crop_regions_map_x_to_width_and_y_to_height():
    sizes = torch.tensor([[30, 90], [90, 30]])  # (h, w): wide and tall images
    regions = torch.tensor([[0.1, 0.6, 0.4, 0.9], [0.1, 0.6, 0.4, 0.9]])
    aug = ViewAug(size=8, scale=(0.3, 0.3), ratio=(1.0, 1.0))
    for step in range(10):
        boxes = sample_crop_boxes(sizes, aug, StepRNG(0, step), regions)
        for (h, w), (x0, y0, x1, y1) in zip(sizes.tolist(), boxes.tolist()):
            assert 0.1 * w - 1e-4 <= x0 and x1 <= 0.4 * w + 1e-4
            assert 0.6 * h - 1e-4 <= y0 and y1 <= 0.9 * h + 1e-4
            assert (x1 - x0) * (y1 - y0) == pytest.approx(0.3 * 0.3 * w * 0.3 * h, rel=1e-4)
    # NaN rows and regions under a pixel crop the whole image
    whole = sample_crop_boxes(sizes[:1], aug, StepRNG(0, 0), torch.tensor([[float("nan")] * 4]))
    tiny = sample_crop_boxes(sizes[:1], aug, StepRNG(0, 0), torch.tensor([[0.5, 0.5, 0.501, 0.501]]))
    plain = sample_crop_boxes(sizes[:1], aug, StepRNG(0, 0))
    assert torch.allclose(whole, plain) and torch.allclose(tiny, plain)


# ---------------------------------------------------------------- batch function
def test_view_masks_follow_view1_crop_and_flip_along_x():
    raw, _ = _raw()
    views = TwoViewBatch([ViewAug(**PLAIN, flip_p=0.5, scale=(0.3, 1.0)), ViewAug(**PLAIN)])
    flips = set()
    for step in range(8):
        out = views(raw, StepRNG(2, step))
        masks = view_masks(raw, out["box1"], out["flip1"], 16, torch.device("cpu"))
        assert masks.shape == (4, 1, 16, 16) and masks.min() >= 0 and masks.max() <= 1
        for i in range(4):
            x0, _, x1, _ = out["box1"][i].tolist()
            cols = masks[i, 0].mean(0)
            rows = masks[i, 0].mean(1)
            assert torch.allclose(rows, rows[:1].expand_as(rows), atol=1e-5)  # the ramp runs along x only
            flipped = bool(out["flip1"][i])
            flips.add(flipped)
            diffs = cols.diff()
            assert ((diffs < 0) if flipped else (diffs > 0)).all()
            assert float(cols.mean()) == pytest.approx((x0 + x1) / 2, abs=1.5 / 24)
    assert flips == {True, False}


class _Recorder:
    """Stands in for background mixup: records its inputs, returns a constant batch."""

    def __call__(self, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator | None = None):
        self.images, self.masks, self.generator = images, masks, generator
        return torch.full_like(images, 7.0), torch.ones(len(images), dtype=torch.bool)


def test_object_aware_batch_hands_view1_and_its_masks_to_background_mixup():
    raw, _ = _raw()
    plain = TwoViewBatch([ViewAug(**PLAIN, flip_p=0.5), ViewAug(**PLAIN, flip_p=0.5)], regions=object_regions)
    for step in range(4):
        rec = _Recorder()
        out = ObjectAwareBatch(plain, rec)(raw, StepRNG(3, step))
        ref = plain(raw, StepRNG(3, step))
        assert torch.equal(rec.images, ref["view1"])
        assert torch.equal(rec.masks, view_masks(raw, ref["box1"], ref["flip1"], 16, torch.device("cpu")))
        assert (out["view1"] == 7.0).all() and torch.equal(out["view2"], ref["view2"])
        assert out["bgmix_applied"].all()


@pytest.mark.parametrize("mix,fn", [("mixup", mixup), ("cutmix", cutmix)])
def test_object_aware_batch_mixes_view1_only_with_the_step_generator(mix, fn):
    raw, _ = _raw()
    plain = TwoViewBatch([ViewAug(**PLAIN), ViewAug(**PLAIN)])
    out = ObjectAwareBatch(plain, mix=mix, alpha=0.3)(raw, StepRNG(0, 5))
    rng = StepRNG(0, 5)
    ref = plain(raw, rng)
    want = fn(ref["view1"], 0.3, generator=rng.generator)
    assert torch.equal(out["view1"], want.images) and torch.equal(out["view2"], ref["view2"])
    assert torch.equal(out["mix_partner"], want.partner) and torch.equal(out["mix_lam"], want.lam)


def test_object_aware_batch_draws_background_mixup_from_the_step_generator():
    raw, _ = _raw()
    for m in raw.meta:
        m["mask"] = torch.zeros(24, 24, dtype=torch.uint8)
        m["mask"][6:14, 8:16] = 200
    plain = TwoViewBatch([ViewAug(**PLAIN), ViewAug(**PLAIN)], regions=object_regions)
    outs = []
    for seed in (1, 2):
        torch.manual_seed(seed)  # the global RNG must not matter
        outs.append(ObjectAwareBatch(plain, BackgroundMixup(aug_prob=0.5))(raw, StepRNG(0, 4)))
    assert torch.equal(outs[0]["view1"], outs[1]["view1"])
    rng = StepRNG(0, 4)
    ref = plain(raw, rng)
    masks = view_masks(raw, ref["box1"], ref["flip1"], 16, torch.device("cpu"))
    want, applied = BackgroundMixup(aug_prob=0.5)(ref["view1"], masks, generator=rng.generator)
    assert torch.equal(outs[0]["view1"], want) and torch.equal(outs[0]["bgmix_applied"], applied)


def test_object_aware_batch_state_is_the_background_queue():
    raw, _ = _raw()
    plain = TwoViewBatch([ViewAug(**PLAIN), ViewAug(**PLAIN)])
    for m in raw.meta:
        m["mask"] = torch.zeros(24, 24, dtype=torch.uint8)
        m["mask"][6:14, 8:16] = 255
    fn = ObjectAwareBatch(plain, BackgroundMixup(aug_prob=1.0, queue_size=5))
    fn(raw, StepRNG(0, 0))
    state = fn.state_dict()
    assert len(state["bgmix"]["queue"]) == 4
    other = ObjectAwareBatch(plain, BackgroundMixup(aug_prob=1.0, queue_size=5))
    other.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(other.bgmix.queue, fn.bgmix.queue))


def test_meta_reader_returns_the_image_boxes_and_its_8bit_mask(tmp_path):
    from harness.cam.boxes import mask_path, save_mask

    soft = np.linspace(0, 1, 6 * 6, dtype=np.float32).reshape(6, 6)
    save_mask(mask_path(tmp_path / "masks", "coco/a.jpg"), soft)
    save_mask(mask_path(tmp_path / "masks", "coco/b.jpg"), 1 - soft)
    keys = {tmp_path / "coco" / "a.jpg": "coco/a.jpg", tmp_path / "coco" / "b.jpg": "coco/b.jpg"}
    boxes = {"coco/a.jpg": [(0.1, 0.2, 0.3, 0.4)], "coco/b.jpg": []}
    meta = meta_reader(keys, boxes, tmp_path / "masks")
    a, b = meta(0, tmp_path / "coco" / "a.jpg"), meta(1, tmp_path / "coco" / "b.jpg")
    assert a["boxes"] == [(0.1, 0.2, 0.3, 0.4)] and b["boxes"] == []
    assert a["mask"].dtype == torch.uint8
    np.testing.assert_array_equal(a["mask"].numpy(), np.round(soft * 255).astype(np.uint8))
    np.testing.assert_array_equal(b["mask"].numpy(), np.round((1 - soft) * 255).astype(np.uint8))
    assert "mask" not in meta_reader(keys, boxes, None)(0, tmp_path / "coco" / "a.jpg")


# ---------------------------------------------------------------- mixing losses
def _linear(d: int, seed: int) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d, d)


def test_mix_mocov2_loss_follows_the_mixed_targets():
    from harness_methods.contracam.model import MixMoCoV2

    d, n, q_size = 6, 5, 4
    model = MixMoCoV2("resnet18", dim=d, hidden=8, queue=q_size, temperature=0.5)
    model.backbone, model.backbone_k = nn.Identity(), nn.Identity()
    model.projector, model.projector_k = _linear(d, 0), _linear(d, 1)
    queue = model.queue.keys.clone()
    g = torch.Generator().manual_seed(0)
    v1, v2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    partner = torch.tensor([2, 0, 4, 1, 3])
    lam = torch.tensor([0.9, 0.6, 0.75, 0.5, 1.0])
    out = model({"view1": v1, "view2": v2, "mix_partner": partner, "mix_lam": lam})
    with torch.no_grad():
        q = F.normalize(model.projector(v1), dim=1)
        k = F.normalize(model.projector_k(v2), dim=1)
    want = 0.0
    for i in range(n):
        logits = torch.cat([q[i] @ k.t(), q[i] @ queue]) / 0.5
        logp = logits - torch.logsumexp(logits, 0)
        want += -(lam[i] * logp[i] + (1 - lam[i]) * logp[partner[i]])
    assert float(out["loss"]) == pytest.approx(float(want) / n, rel=1e-5)
    assert torch.allclose(model.queue.keys[:, :4], k[-4:].t(), atol=1e-6)  # keys are enqueued


def test_mix_byol_loss_follows_the_mixed_targets():
    from harness_methods.contracam.model import MixBYOL

    d, n = 6, 5
    model = MixBYOL("resnet18", dim=d, hidden=8, pred_hidden=8)
    model.backbone, model.backbone_t = nn.Identity(), nn.Identity()
    model.projector, model.projector_t, model.predictor = _linear(d, 0), _linear(d, 1), _linear(d, 2)
    g = torch.Generator().manual_seed(1)
    v1, v2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    partner = torch.tensor([3, 4, 0, 2, 1])
    lam = torch.tensor([0.55, 0.95, 0.7, 0.5, 0.8])
    out = model({"view1": v1, "view2": v2, "mix_partner": partner, "mix_lam": lam})
    with torch.no_grad():
        p1, p2 = model.predictor(model.projector(v1)), model.predictor(model.projector(v2))
        z1, z2 = model.projector_t(v1), model.projector_t(v2)

    def dist(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(2 - 2 * (a @ b) / (a.norm() * b.norm()))

    first = sum(float(lam[i]) * dist(p1[i], z2[i]) + (1 - float(lam[i])) * dist(p1[i], z2[partner[i]])
                for i in range(n)) / n
    second = sum(float(lam[i]) * dist(p2[i], z1[i]) + (1 - float(lam[i])) * dist(p2[partner[i]], z1[i])
                 for i in range(n)) / n
    assert float(out["loss"]) == pytest.approx(first + second, rel=1e-5)


# ---------------------------------------------------------------- recipe
def test_defaults_are_the_reference_settings():
    import inspect

    from harness.cam.boxes import boxes_from_mask, mask_to_boxes
    from harness_methods.contracam.recipe import BgMixConfig, CamConfig, MixConfig, OracleConfig

    cam = CamConfig()
    assert (cam.threshold, cam.min_area, cam.margin, cam.iterations, cam.numerator) == (0.5, 0.01, 0.2, 10, "paper")
    assert (cam.batch_size, cam.image_size, cam.crf, cam.binarize, cam.contours) == (256, 224, False, "soft",
                                                                                      "external")
    assert BgMixConfig() == BgMixConfig(cam_thres=0.2, aug_prob=0.4, queue_size=50)
    default = BackgroundMixup()
    assert (default.cam_thres, default.aug_prob, default.queue.maxlen) == (0.2, 0.4, 50)
    assert MixConfig().alpha == 1.0
    assert (OracleConfig().min_area, OracleConfig().margin) == (0.01, 0.2)
    for fn in (mask_to_boxes, boxes_from_mask):
        params = inspect.signature(fn).parameters
        assert (params["threshold"].default, params["min_area"].default, params["margin"].default) == (0.5, 0.01,
                                                                                                       0.2)


@pytest.mark.parametrize("variant,crop,bgmix,cam,boxes_stage", [
    ("crop", True, False, True, "cam_boxes"),
    ("bgmix", False, True, True, "cam_boxes"),
    ("crop+bgmix", True, True, True, "cam_boxes"),
    ("oracle", True, False, False, "gt_boxes"),
    ("mixup", False, False, False, "cam_boxes"),
    ("cutmix", False, False, False, "cam_boxes"),
])
def test_variant_flags(variant, crop, bgmix, cam, boxes_stage):
    from harness_methods.contracam.recipe import ContraCamRecipe
    from harness_methods.contracam.stages.objaware import boxes_stage as stage_of

    recipe = ContraCamRecipe.from_recipe({"variant": variant, "bgmix": {"aug_prob": 0.7, "cam_thres": 0.3},
                                          "cam": {"iterations": 4, "batch_size": 8, "chunk": 16}})
    assert (recipe.uses_crop, recipe.uses_bgmix, recipe.uses_cam) == (crop, bgmix, cam)
    assert recipe.bgmix.aug_prob == 0.7 and recipe.bgmix.cam_thres == 0.3 and recipe.cam.iterations == 4
    if crop:
        assert stage_of(recipe) == boxes_stage


# ---------------------------------------------------------------- stage wiring
@pytest.mark.parametrize("variant", ["crop+bgmix", "bgmix", "oracle", "mixup", "cutmix"])
def test_objaware_stage_wires_the_variant_into_the_batch_function(tmp_path, monkeypatch, variant):
    import yaml
    from PIL import Image

    import harness.pretrain.stage as pretrain_stage
    from harness.api import StageContext
    from harness.cam.boxes import mask_path, save_boxes, save_mask
    from harness.pretrain.moco import MoCoV2Model
    from harness_methods.contracam.stages import objaware as stage_objaware
    from harness_methods.contracam.model import MixMoCoV2

    root = tmp_path / "data"
    (root / "coco" / "train2017").mkdir(parents=True)
    keys = [f"coco/train2017/{i}.png" for i in range(3)]
    for key in keys:
        Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(root / key)
    boxes = {keys[0]: [(0.1, 0.2, 0.5, 0.6)], keys[1]: [], keys[2]: [(0.0, 0.0, 1.0, 0.5), (0.3, 0.3, 0.9, 0.9)]}
    upstream = {}
    for stage in ("cam_boxes", "gt_boxes"):
        (tmp_path / stage).mkdir()
        save_boxes(tmp_path / stage / "boxes.json", boxes if stage == "cam_boxes" else {k: [] for k in keys})
        upstream[stage] = tmp_path / stage
    for i, key in enumerate(keys):
        save_mask(mask_path(tmp_path / "cam_boxes" / "masks", key), np.full((8, 8), i / 4, np.float32))
    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "methods" / "contracam" / "recipes"
                          / "tiny.yaml").read_text())
    cfg.update(variant=variant, bgmix={"cam_thres": 0.35, "aug_prob": 0.65, "queue_size": 7}, mix={"alpha": 0.3})
    cfg["data"] = {"dirs": ["coco/train2017"], "short_side": 20, "cache": False, "num_workers": 0}
    captured = {}

    def fake_pretrain(ctx, model, batch_fn=None, meta=None):
        captured.update(ctx=ctx, model=model, batch_fn=batch_fn, meta=meta)
        return {}

    monkeypatch.setattr(pretrain_stage, "pretrain", fake_pretrain)
    ctx = StageContext(name="objaware_pretrain", cfg=cfg, workdir=tmp_path / "work", data_root=root, seed=0,
                       device="cpu", preset="tiny", upstream=upstream)
    stage_objaware.run(ctx)
    fn, meta = captured["batch_fn"], captured["meta"]
    crop = variant in ("crop+bgmix", "oracle")
    assert (fn.views.regions is object_regions) == crop
    if "bgmix" in variant:
        assert (fn.bgmix.cam_thres, fn.bgmix.aug_prob, fn.bgmix.queue.maxlen) == (0.35, 0.65, 7)
        got = meta(2, root / keys[2])["mask"]
        assert torch.equal(got, torch.full((8, 8), round(2 / 4 * 255), dtype=torch.uint8))
    else:
        assert fn.bgmix is None
    if variant in ("mixup", "cutmix"):
        assert fn.mix == variant and fn.alpha == 0.3 and isinstance(captured["model"], MixMoCoV2)
        assert meta is None
    else:
        assert fn.mix is None and type(captured["model"]) is MoCoV2Model
    if crop:
        want = boxes[keys[2]] if variant != "oracle" else []
        assert [tuple(b) for b in meta(2, root / keys[2])["boxes"]] == want
    assert "variant" not in captured["ctx"].cfg and captured["ctx"].cfg["arch"] == "resnet18"


def test_the_first_stages_read_only_their_part_of_the_recipe():
    import yaml

    from harness_methods.contracam import ContraCAM
    from harness_methods.contracam.recipe import METHOD_KEYS

    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "methods" / "contracam" / "recipes"
                          / "tiny.yaml").read_text())
    reads = {s.name: s.reads for s in ContraCAM().stages(cfg)}
    assert set(reads["pretrain"]) == {"base", "vanilla"} | (set(cfg) - set(METHOD_KEYS))
    assert not {"variant", "bgmix", "mix", "objaware", "cam"} & set(reads["pretrain"])
    assert set(reads["cam_boxes"]) == {"cam", "data", "objaware"}  # the CAM runs on the second stage's images
    assert reads["objaware_pretrain"] is None


def test_stage_overrides_are_merged_over_the_shared_recipe():
    from harness_methods.contracam.recipe import base_recipe

    cfg = {"base": "mocov2", "variant": "crop", "epochs": 10, "data": {"short_side": 96, "cache": True},
           "augment": {"size": 64}, "objaware": {"data": {"short_side": 48}, "epochs": 4},
           "vanilla": {"epochs": 2, "augment": {"scale": [0.2, 1.0]}}}
    first, second = base_recipe(cfg), base_recipe(cfg, second_stage=True)
    assert first == {"epochs": 2, "data": {"short_side": 96, "cache": True},
                     "augment": {"size": 64, "scale": [0.2, 1.0]}}
    assert second == {"epochs": 4, "data": {"short_side": 48, "cache": True}, "augment": {"size": 64}}
