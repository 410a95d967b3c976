"""Two-view augmentation semantics: colour operations against torchvision's, the order
and probabilities of the colour steps, crop geometry (scale, aspect ratio, position,
regions, fallback), flip, normalisation, and two views of the same images."""
from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.functional as TF

from harness.pretrain.augment import (ColorParams, StepRNG, TwoViewBatch, ViewAug, _adjust, _gray, apply_color,
                                      gaussian_blur, make_view, render_crops, sample_color_params,
                                      sample_crop_boxes)
from harness.pretrain.data import RawBatch, collate

PLAIN = dict(flip_p=0.0, jitter_p=0.0, gray_p=0.0, blur_p=0.0, solarize_p=0.0, mean=(0.0, 0.0, 0.0),
             std=(1.0, 1.0, 1.0))
TV_JITTER = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)


def _images(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 9, 11, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("op,factors", [(0, [0.6, 1.0, 1.4]), (1, [0.6, 1.0, 1.4]), (2, [0.6, 0.0, 1.4]),
                                        (3, [-0.1, 0.05, 0.3])])
def test_jitter_operations_match_torchvision(op: int, factors: list[float]) -> None:
    x = _images()
    got = _adjust(x.clone(), op, torch.tensor(factors))
    want = torch.stack([TV_JITTER[op](x[i], f) for i, f in enumerate(factors)])
    assert torch.allclose(got, want, atol=1e-4)


def test_grayscale_and_blur_match_torchvision() -> None:
    x = _images()
    assert torch.allclose(_gray(x), TF.rgb_to_grayscale(x), atol=2e-4)
    sigma = torch.tensor([0.3, 1.0, 2.0])
    want = torch.stack([TF.gaussian_blur(x[i], [5, 5], [float(s)] * 2) for i, s in enumerate(sigma)])
    assert torch.allclose(gaussian_blur(x, sigma, 5), want, atol=1e-5)


def test_colour_steps_run_in_each_images_order_then_gray_blur_solarize() -> None:
    x = _images(4, seed=1)
    aug = ViewAug(blur_kernel=5)
    p = ColorParams(jitter=torch.tensor([True, True, False, True]),
                    factors=torch.tensor([[0.7, 1.3, 0.5, 0.08], [1.2, 0.8, 1.4, -0.06], [0.6, 0.6, 0.6, 0.1],
                                          [1.3, 0.7, 1.2, 0.05]]),
                    order=torch.tensor([[3, 0, 2, 1], [0, 1, 2, 3], [0, 1, 2, 3], [1, 3, 0, 2]]),
                    gray=torch.tensor([False, True, False, False]), blur=torch.tensor([False, False, True, True]),
                    sigma=torch.tensor([1.0, 1.0, 1.5, 0.7]), solarize=torch.tensor([True, False, False, True]))
    got = apply_color(x.clone(), p, aug)
    for i in range(4):
        y = x[i]
        if p.jitter[i]:
            for op in p.order[i].tolist():
                y = TV_JITTER[op](y, float(p.factors[i, op]))
        if p.gray[i]:
            y = TF.rgb_to_grayscale(y, num_output_channels=3)
        if p.blur[i]:
            y = TF.gaussian_blur(y, [5, 5], [float(p.sigma[i])] * 2)
        if p.solarize[i]:
            y = torch.where(y >= 0.5, 1 - y, y)
        assert torch.allclose(got[i], y, atol=5e-4), i


def test_colour_parameters_follow_probabilities_and_ranges() -> None:
    aug = ViewAug(jitter=(0.4, 0.3, 0.2, 0.1), jitter_p=0.8, gray_p=0.2, blur_p=0.5, solarize_p=0.1,
                  blur_sigma=(0.1, 2.0))
    p = sample_color_params(4000, aug, StepRNG(0, 0))
    for flag, prob in ((p.jitter, 0.8), (p.gray, 0.2), (p.blur, 0.5), (p.solarize, 0.1)):
        assert abs(flag.float().mean().item() - prob) < 0.03
    lo, hi = torch.tensor([0.6, 0.7, 0.8, -0.1]), torch.tensor([1.4, 1.3, 1.2, 0.1])
    assert (p.factors >= lo).all() and (p.factors <= hi).all()
    assert (p.factors.min(0).values - lo).abs().max() < 0.01 and (p.factors.max(0).values - hi).abs().max() < 0.01
    assert p.sigma.min() >= 0.1 and p.sigma.max() <= 2.0 and p.sigma.min() < 0.12 and p.sigma.max() > 1.98
    assert torch.equal(p.order.sort(1).values, torch.arange(4).expand(4000, 4))
    assert len({tuple(r) for r in p.order.tolist()}) == 24  # every order occurs
    for a, b in ((p.jitter, p.gray), (p.gray, p.blur), (p.blur, p.solarize)):
        assert not torch.equal(a, b)  # independent draws
    none = sample_color_params(500, ViewAug(jitter_p=0.0, gray_p=0.0, blur_p=0.0, solarize_p=0.0), StepRNG(0, 0))
    assert not (none.jitter | none.gray | none.blur | none.solarize).any()
    every = sample_color_params(500, ViewAug(jitter_p=1.0, gray_p=1.0, blur_p=1.0, solarize_p=1.0), StepRNG(0, 0))
    assert (every.jitter & every.gray & every.blur & every.solarize).all()


def test_crop_boxes_have_the_drawn_area_and_aspect_ratio() -> None:
    sizes = torch.tensor([[64, 64]] * 300 + [[40, 90]] * 100)
    for scale, ratio in (((0.25, 0.25), (1.0, 1.0)), ((0.1, 0.1), (2.0, 2.0)), ((0.3, 0.3), (0.8, 0.8))):
        boxes = sample_crop_boxes(sizes, ViewAug(scale=scale, ratio=ratio), StepRNG(0, 1)).double()
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        area = w * h / (sizes[:, 0] * sizes[:, 1])
        assert torch.allclose(area, torch.full_like(area, scale[0]), rtol=1e-4)
        assert torch.allclose(w / h, torch.full_like(w, ratio[0]), rtol=1e-4)
    boxes = sample_crop_boxes(sizes[:300], ViewAug(scale=(0.2, 0.6), ratio=(0.5, 2.0)), StepRNG(0, 2)).double()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    area, log_r = w * h / 64 ** 2, (w / h).log()
    assert area.min() >= 0.2 - 1e-5 and area.max() <= 0.6 + 1e-5
    assert area.min() < 0.22 and area.max() > 0.55 and abs(area.mean().item() - 0.4) < 0.04  # uniform in area
    assert log_r.min() >= math.log(0.5) - 1e-5 and log_r.max() <= math.log(2.0) + 1e-5
    assert abs(log_r.mean().item()) < 0.1 and log_r.min() < math.log(0.55) and log_r.max() > math.log(1.8)


def test_crop_positions_cover_the_free_range_independently() -> None:
    sizes = torch.tensor([[64, 96]] * 400)
    boxes = sample_crop_boxes(sizes, ViewAug(scale=(0.25, 0.25), ratio=(1.0, 1.0)), StepRNG(0, 3)).double()
    side = math.sqrt(0.25 * 64 * 96)
    ux, uy = boxes[:, 0] / (96 - side), boxes[:, 1] / (64 - side)
    for u in (ux, uy):
        assert u.min() >= -1e-6 and u.max() <= 1 + 1e-6 and u.min() < 0.03 and u.max() > 0.97
        assert abs(u.mean().item() - 0.5) < 0.05
    assert abs(torch.corrcoef(torch.stack([ux, uy]))[0, 1].item()) < 0.15


def test_crops_inside_a_region_scale_with_the_region() -> None:
    sizes = torch.tensor([[60, 80]] * 50)
    regions = torch.tensor([[0.25, 0.5, 0.75, 1.0]] * 50)  # 40 x 30 px
    boxes = sample_crop_boxes(sizes, ViewAug(scale=(0.5, 0.5), ratio=(1.0, 1.0)), StepRNG(0, 4), regions).double()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert torch.allclose(w * h, torch.full_like(w, 0.5 * 40 * 30), rtol=1e-4)
    assert (boxes[:, 0] >= 20 - 1e-4).all() and (boxes[:, 2] <= 60 + 1e-4).all()
    assert (boxes[:, 1] >= 30 - 1e-4).all() and (boxes[:, 3] <= 60 + 1e-4).all()


def test_crops_that_never_fit_fall_back_to_a_centre_crop() -> None:
    sizes = torch.tensor([[40, 40], [40, 100], [100, 40]])
    boxes = sample_crop_boxes(sizes, ViewAug(scale=(2.0, 3.0)), StepRNG(0, 5))
    # square: the whole image; too wide / too tall: the widest / tallest allowed ratio, centred
    want = torch.tensor([[0.0, 0.0, 40.0, 40.0], [50 - 80 / 3, 0.0, 50 + 80 / 3, 40.0],
                         [0.0, 50 - 80 / 3, 40.0, 50 + 80 / 3]])
    assert torch.allclose(boxes, want, atol=1e-3)


def test_render_crops_resamples_the_box() -> None:
    ramp = torch.arange(16.0).repeat(3, 16, 1)[None]  # value = x (column)
    left = render_crops(ramp, torch.tensor([[0.0, 0.0, 8.0, 16.0]]), 8)
    assert torch.allclose(left[0], ramp[0, :, ::2, :8], atol=1e-4)
    right = render_crops(ramp, torch.tensor([[8.0, 0.0, 16.0, 8.0]]), 8)
    assert torch.allclose(right[0], ramp[0, :, :8, 8:], atol=1e-4)


def _solid(colours: list[tuple[int, int, int]], h: int = 20, w: int = 30) -> RawBatch:
    items = [{"image": torch.tensor(c, dtype=torch.uint8).view(3, 1, 1).expand(3, h + i, w - i).contiguous(),
              "index": 10 + i, "meta": {"i": i}} for i, c in enumerate(colours)]
    return collate(items)


def test_flip_mirrors_the_selected_rows_with_the_flip_probability() -> None:
    g = torch.Generator().manual_seed(0)
    items = [{"image": torch.randint(0, 256, (3, 12, 12), dtype=torch.uint8, generator=g), "index": i, "meta": {}}
             for i in range(200)]
    raw = collate(items)
    plain = make_view(raw, ViewAug(size=6, **PLAIN), StepRNG(0, 7))
    flipped = make_view(raw, ViewAug(size=6, **{**PLAIN, "flip_p": 0.3}), StepRNG(0, 7))
    assert abs(flipped.flip.float().mean().item() - 0.3) < 0.08 and not plain.flip.any()
    want = torch.where(flipped.flip.view(-1, 1, 1, 1), plain.image.flip(-1), plain.image)
    assert torch.allclose(flipped.image, want, atol=1e-6)
    assert torch.equal(flipped.box, plain.box)


def test_normalisation_uses_the_configured_mean_and_std() -> None:
    raw = _solid([(255, 0, 128), (51, 102, 204)])
    aug = ViewAug(size=4, **{**PLAIN, "mean": (0.5, 0.25, 0.1), "std": (0.5, 0.2, 0.4)})
    v = make_view(raw, aug, StepRNG(0, 0)).image
    rgb = torch.tensor([[255, 0, 128], [51, 102, 204]]) / 255
    want = (rgb - torch.tensor([0.5, 0.25, 0.1])) / torch.tensor([0.5, 0.2, 0.4])
    assert torch.allclose(v, want.view(2, 3, 1, 1).expand(2, 3, 4, 4), atol=1e-5)


def test_two_views_show_the_same_images_with_their_own_settings() -> None:
    colours = [(250, 10, 10), (10, 250, 10), (10, 10, 250), (200, 200, 20)]
    raw = _solid(colours)
    fn = TwoViewBatch.from_cfg({**PLAIN, "size": 6, "view2": {"size": 4, "gray_p": 1.0}})
    assert fn.augs[0].size == 6 and fn.augs[1] == ViewAug(**{**PLAIN, "size": 4, "gray_p": 1.0})
    out = fn(raw, StepRNG(0, 2))
    assert out["view1"].shape == (4, 3, 6, 6) and out["view2"].shape == (4, 3, 4, 4)
    rgb = torch.tensor(colours) / 255
    assert torch.allclose(out["view1"], rgb.view(4, 3, 1, 1).expand(4, 3, 6, 6), atol=1e-5)  # row i = image i
    gray = (rgb * torch.tensor([0.299, 0.587, 0.114])).sum(1)
    assert torch.allclose(out["view2"], gray.view(4, 1, 1, 1).expand(4, 3, 4, 4), atol=1e-5)
    assert torch.equal(out["index"], torch.tensor([10, 11, 12, 13])) and out["meta"][2] == {"i": 2}
    assert (out["box1"] - out["box2"]).abs().amax(1).min() > 1e-3  # independent crops of each image
    assert set(out) == {"view1", "view2", "box1", "box2", "flip1", "flip2", "index", "meta"}


def test_step_rng_is_a_function_of_seed_and_step_sliced_by_rank() -> None:
    full = StepRNG(4, 9).rand(6, 2)
    assert torch.equal(StepRNG(4, 9).rand(6, 2), full)
    assert not torch.equal(StepRNG(4, 10).rand(6, 2), full) and not torch.equal(StepRNG(5, 9).rand(6, 2), full)
    halves = [StepRNG(4, 9, rank=r, world_size=2).rand(3, 2) for r in range(2)]
    assert torch.equal(torch.cat(halves), full)
    u = StepRNG(4, 9).uniform(1000, 2.0, 5.0)
    assert u.min() >= 2.0 and u.max() < 5.0 and abs(u.mean().item() - 3.5) < 0.15


def test_two_views_crop_inside_the_regions_of_the_batch_function() -> None:
    raw = _solid([(250, 10, 10), (10, 250, 10), (10, 10, 250)])
    regions = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [float("nan")] * 4])
    fn = TwoViewBatch.from_cfg({**PLAIN, "size": 4, "scale": (0.5, 0.5), "ratio": (1.0, 1.0)},
                               regions=lambda raw_, rng: regions)
    out = fn(raw, StepRNG(0, 1))
    for key in ("box1", "box2"):
        box = out[key]
        assert (box[0, 2:] <= 0.5 + 1e-5).all() and (box[1, :2] >= 0.5 - 1e-5).all()
        areas = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
        assert torch.allclose(areas, torch.tensor([0.125, 0.125, 0.5]), rtol=1e-3)
