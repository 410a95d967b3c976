"""The three D3SSL region augmentations on hand-made images: which pixels change."""
from __future__ import annotations

import pytest
import torch

from harness_methods.d3ssl.region_aug import (background_replace, downscale_reposition, grid_pseudo_boxes, rcc_mask,
                                      rect_mask, region_cutout)

H = W = 40


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _boxes() -> tuple[torch.Tensor, torch.Tensor]:
    boxes = torch.tensor([[[4.0, 4.0, 16.0, 16.0], [22.0, 20.0, 36.0, 34.0]],
                          [[10.0, 10.0, 30.0, 30.0], [0.0, 0.0, 8.0, 8.0]]])
    return boxes, torch.tensor([[True, True], [True, False]])


def _inside(boxes: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return rect_mask(boxes, valid, H, W)


def test_rect_mask_covers_exactly_the_pixels_of_the_box():
    m = rect_mask(torch.tensor([[[2.0, 3.0, 5.0, 7.0]]]), torch.tensor([[True]]), 10, 10)[0, 0]
    assert m.sum() == 3 * 4
    assert m[3:7, 2:5].all()
    assert not rect_mask(torch.tensor([[[2.0, 3.0, 5.0, 7.0]]]), torch.tensor([[False]]), 10, 10).any()


def test_box_cutout_inside_only_touches_pixels_inside_valid_boxes():
    boxes, valid = _boxes()
    img = torch.ones(2, 3, H, W)
    out, cut = region_cutout(img, boxes, valid, _gen(), mode="box", around=False, ratio=(0.2, 0.3))
    inside = _inside(boxes, valid)
    assert cut.any()
    assert not (cut & ~inside).any(), "an inside-only cut-out reached outside the valid boxes"
    assert torch.equal(out, img.masked_fill(cut, 0.0))  # cut pixels are the mean colour (0), others unchanged
    for b in range(2):
        for k in range(2):
            if valid[b, k]:
                x0, y0, x1, y1 = boxes[b, k].long().tolist()
                frac = cut[b, 0, y0:y1, x0:x1].float().mean().item()
                assert 0.1 <= frac <= 0.4, frac


def test_box_cutout_around_also_cuts_next_to_the_boxes():
    boxes, valid = _boxes()
    outside_hits = 0
    for seed in range(5):
        _, cut = region_cutout(torch.ones(2, 3, H, W), boxes, valid, _gen(seed), mode="box", around=True, band=0.5)
        outside_hits += int((cut & ~_inside(boxes, valid)).sum())
    assert outside_hits > 0


def test_rcc_on_rois_cuts_about_ratio_of_each_box_and_nothing_outside():
    boxes, valid = _boxes()
    cut = rcc_mask(boxes, valid, (H, W), _gen(1), ratio=(0.3, 0.3))
    assert not (cut & ~_inside(boxes, valid)).any()
    x0, y0, x1, y1 = boxes[0, 0].long().tolist()
    assert cut[0, 0, y0:y1, x0:x1].float().mean().item() == pytest.approx(0.3, abs=0.1)
    x0, y0, x1, y1 = boxes[0, 1].long().tolist()
    assert cut[0, 0, y0:y1, x0:x1].float().mean().item() == pytest.approx(0.3, abs=0.1)


def test_rcc_restores_a_box_that_is_already_over_cut():
    # a small box inside a big one: after the big box is cut, the small one ends near the ratio too
    boxes = torch.tensor([[[0.0, 0.0, 40.0, 40.0], [10.0, 10.0, 20.0, 20.0]]])
    valid = torch.ones(1, 2, dtype=torch.bool)
    for seed in range(5):
        cut = rcc_mask(boxes, valid, (H, W), _gen(seed), ratio=(0.4, 0.4))
        small = cut[0, 0, 10:20, 10:20].float().mean().item()
        assert small <= 0.55, small


def test_rcc_grid_pseudo_boxes_follow_the_follow_up_geometry():
    pb = grid_pseudo_boxes(64, (90, 90), _gen(2))
    assert pb.shape == (64, 9, 4)
    area = (pb[..., 2] - pb[..., 0]) * (pb[..., 3] - pb[..., 1]) / 90 ** 2
    assert area.max() <= 0.3 + 1e-4  # clipping only shrinks
    centre_x = (pb[..., 0] + pb[..., 2]) / 2 / 90
    cell_x = torch.arange(9) % 3
    unclipped = (pb[..., 0] > 0) & (pb[..., 2] < 90)
    assert ((centre_x[unclipped] * 3).floor() == cell_x.expand(64, 9)[unclipped]).all()
    _, cut = region_cutout(torch.ones(4, 3, 90, 90), torch.zeros(4, 1, 4), torch.zeros(4, 1, dtype=torch.bool),
                           _gen(3), mode="rcc", pseudo_boxes="grid", ratio=(0.4, 0.4))
    assert 0.05 < cut.float().mean().item() < 0.5


def test_invert_half_and_fill_source():
    boxes, valid = _boxes()
    img = torch.ones(2, 3, H, W)
    src = torch.full((2, 3, H, W), 5.0)
    _, plain = region_cutout(img, boxes, valid, _gen(4), mode="box", around=False)
    out, inv = region_cutout(img, boxes, valid, _gen(4), mode="box", around=False, invert_half=True,
                             fill_source=src)
    assert torch.equal(inv[0], plain[0]) and torch.equal(inv[1], ~plain[1])
    assert torch.equal(out, torch.where(inv, src, img))


def test_downscale_reposition_moves_the_object_and_its_box():
    img = torch.zeros(2, 3, H, W)
    boxes = torch.tensor([[[8.0, 8.0, 24.0, 24.0]], [[16.0, 4.0, 32.0, 20.0]]])
    for b in range(2):
        x0, y0, x1, y1 = boxes[b, 0].long().tolist()
        img[b, :, y0:y1, x0:x1] = 1.0
    out, new = downscale_reposition(img, boxes, _gen(5), scale=0.5, canvas=0.75)
    assert out.shape == (2, 3, 30, 30)
    for b in range(2):
        x0, y0, x1, y1 = new[b, 0].tolist()
        assert x1 - x0 == pytest.approx(8) and y1 - y0 == pytest.approx(8)
        inner = out[b, 0, round(y0) + 1:round(y1) - 1, round(x0) + 1:round(x1) - 1]
        assert inner.min() > 0.9  # the object is where the new box says
        assert out[b, 0].sum() == pytest.approx(64, abs=8)  # nothing else is bright; the canvas is 0


def test_downscale_without_canvas_is_a_plain_resize():
    img = torch.rand(1, 3, H, W)
    boxes = torch.tensor([[[4.0, 4.0, 20.0, 20.0]]])
    out, new = downscale_reposition(img, boxes, _gen(6), scale=0.5, canvas=0.5)
    assert out.shape == (1, 3, 20, 20)
    assert torch.allclose(new, boxes * 0.5)


def test_background_replace_in_place_keeps_boxes_and_swaps_the_rest():
    boxes, valid = _boxes()
    img = torch.ones(2, 3, H, W)
    bg = torch.full((2, 3, H, W), -1.0)
    out, new = background_replace(img, boxes, valid, bg, _gen(7), reposition=False)
    inside = _inside(boxes, valid).expand_as(img)
    assert torch.equal(new, boxes)
    assert (out[inside] == 1).all() and (out[~inside] == -1).all()


def test_background_replace_moved_pastes_the_box_content_at_its_new_place():
    img = torch.zeros(1, 3, H, W)
    pattern = torch.arange(10 * 12, dtype=torch.float32).view(10, 12) + 1
    img[0, :, 5:15, 3:15] = pattern
    boxes = torch.tensor([[[3.0, 5.0, 15.0, 15.0]]])
    bg = torch.full((1, 3, H, W), -1.0)
    out, new = background_replace(img, boxes, torch.ones(1, 1, dtype=torch.bool), bg, _gen(8), reposition=True)
    x0, y0, x1, y1 = (int(v) for v in new[0, 0].tolist())
    assert (x1 - x0, y1 - y0) == (12, 10)
    assert torch.equal(out[0, 0, y0:y1, x0:x1], pattern)
    outside = torch.ones(H, W, dtype=torch.bool)
    outside[y0:y1, x0:x1] = False
    assert (out[0, 0][outside] == -1).all()
