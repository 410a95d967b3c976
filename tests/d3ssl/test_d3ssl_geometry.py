"""D3SSL's geometry against plain re-implementations: the region augmentations (same
random draws, pixel loops), which RoI of view 1 matches which of view 2, how each module
view is built from the batch, and the proposals' box format."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from d3ssl_helpers import raw_batch
from harness.pretrain.augment import StepRNG
from harness.pretrain.data import RawBatch, collate
from harness_methods.d3ssl.stages.proposals import (PROPOSALS_FILE, ProposalCfg, ProposalMeta, filter_boxes, load_proposals_file,
                                     run_proposals)
from harness_methods.d3ssl.region_aug import (background_replace, box_cutout_mask, downscale_reposition, grid_pseudo_boxes,
                                      rcc_mask, rect_mask, region_cutout)
from harness_methods.d3ssl.views import D3SSLBatch, select_rois

H, W = 36, 52  # not square, so that x and y cannot be swapped unnoticed


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rand_boxes(g: torch.Generator, b: int, k: int, h: int = H, w: int = W) -> torch.Tensor:
    """Random float boxes ``(x1, y1, x2, y2)`` inside an ``h x w`` image, distinct areas."""
    x = torch.rand(b, k, 2, generator=g) * torch.tensor([w * 0.6, h * 0.6])
    size = torch.rand(b, k, 2, generator=g) * torch.tensor([w * 0.35, h * 0.35]) + 6
    return torch.cat([x, torch.minimum(x + size, torch.tensor([float(w), float(h)]))], dim=-1)


def ref_rect_mask(rects: torch.Tensor, valid: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pixel (x, y) is in a rectangle when its centre lies in ``[x1, x2) x [y1, y2)``."""
    out = torch.zeros(rects.shape[0], 1, h, w, dtype=torch.bool)
    for b in range(rects.shape[0]):
        for m in range(rects.shape[1]):
            if not bool(valid[b, m]):
                continue
            x1, y1, x2, y2 = (float(v) for v in rects[b, m])
            for y in range(h):
                for x in range(w):
                    if x1 <= x + 0.5 < x2 and y1 <= y + 0.5 < y2:
                        out[b, 0, y, x] = True
    return out


def _int_rect(out: torch.Tensor, b: int, x1: float, y1: float, x2: float, y2: float) -> None:
    """Mark an integer-pixel rectangle (clipped) in ``out[b, 0]``."""
    out[b, 0, max(0, int(y1)):max(0, int(y2)), max(0, int(x1)):max(0, int(x2))] = True


# ------------------------------------------------------------------ region augmentations


def test_rect_mask_matches_pixel_centre_loops_on_float_boxes() -> None:
    g = _gen(0)
    rects = _rand_boxes(g, 2, 3) + 0.3
    valid = torch.tensor([[True, False, True], [True, True, True]])
    assert torch.equal(rect_mask(rects, valid, H, W), ref_rect_mask(rects, valid, H, W))
    # edges on pixel centres: the left/top centre is in, the right/bottom one is out
    m = rect_mask(torch.tensor([[[2.5, 3.5, 5.5, 7.5]]]), torch.tensor([[True]]), 10, 12)[0, 0]
    assert m.nonzero().min(dim=0).values.tolist() == [3, 2] and m.nonzero().max(dim=0).values.tolist() == [6, 4]


@pytest.mark.parametrize("around,prob", [(False, 1.0), (True, 1.0), (True, 0.5), (True, 0.0)])
def test_box_cutout_mask_matches_a_plain_implementation(around: bool, prob: float) -> None:
    """One block per chosen box with the box's aspect and ``frac`` of its area, uniform
    inside it; with ``around`` one more of that size centred in the band outside a side."""
    n, k_boxes = 4, 4
    boxes = _rand_boxes(_gen(1), n, k_boxes)
    valid = torch.ones(n, k_boxes, dtype=torch.bool)
    valid[0, 2] = False
    ratio, band = (0.1, 0.3), 0.5
    got = box_cutout_mask(boxes, valid, (H, W), _gen(7), ratio, around, band, prob)

    g = _gen(7)
    frac = torch.rand((n, k_boxes), generator=g, dtype=torch.float64) * (ratio[1] - ratio[0]) + ratio[0]
    chosen = valid & (torch.rand((n, k_boxes), generator=g) < prob)
    u = torch.rand((n, k_boxes, 2), generator=g, dtype=torch.float64)
    if around:
        side = torch.randint(0, 4, (n, k_boxes), generator=g)
        depth = torch.rand((n, k_boxes), generator=g, dtype=torch.float64) * band
        along = torch.rand((n, k_boxes), generator=g, dtype=torch.float64)
        assert set(side[chosen].tolist()) == {0, 1, 2, 3} or prob == 0.0  # every side is exercised
    rects, keep = [], []
    for b in range(n):
        for k in range(k_boxes):
            x1, y1, x2, y2 = (float(v) for v in boxes[b, k])
            w, h = x2 - x1, y2 - y1
            bw, bh = w * math.sqrt(frac[b, k]), h * math.sqrt(frac[b, k])
            ix, iy = x1 + float(u[b, k, 0]) * (w - bw), y1 + float(u[b, k, 1]) * (h - bh)
            rects.append((b, [ix, iy, ix + bw, iy + bh]))
            keep.append(bool(chosen[b, k]))
            if around:
                d, a = float(depth[b, k]), float(along[b, k])
                cx, cy = {0: (x1 - d * w, y1 + a * h), 1: (x2 + d * w, y1 + a * h),
                          2: (x1 + a * w, y1 - d * h), 3: (x1 + a * w, y2 + d * h)}[int(side[b, k])]
                rects.append((b, [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]))
                keep.append(bool(chosen[b, k]))
    want = torch.zeros(n, 1, H, W, dtype=torch.bool)
    for (b, r), ok in zip(rects, keep):
        if ok:
            want[b:b + 1] |= ref_rect_mask(torch.tensor([[r]]), torch.tensor([[True]]), H, W)
    assert torch.equal(got, want)
    if prob == 0.0:
        assert not got.any()
    if around and prob == 1.0:
        inside = ref_rect_mask(boxes, valid, H, W)
        assert (got & ~inside).any() and (got & inside).any()


def ref_rcc(boxes: torch.Tensor, valid: torch.Tensor, h: int, w: int, gen: torch.Generator,
            ratio: tuple[float, float]) -> torch.Tensor:
    """RCC with python loops: boxes (rounded to whole pixels) from the largest; a box
    already cut by more than ``r`` is restored; then a block of the box's aspect and the
    missing fraction of its area is cut at a uniform place inside it."""
    bsz, k = boxes.shape[:2]
    r_img = torch.rand((bsz,), generator=gen, dtype=torch.float64) * (ratio[1] - ratio[0]) + ratio[0]
    ib = boxes.round()
    ib[..., 0::2] = ib[..., 0::2].clamp(0, w)
    ib[..., 1::2] = ib[..., 1::2].clamp(0, h)
    cut = torch.zeros(bsz, 1, h, w, dtype=torch.bool)
    order = []  # per image: (box, area) from the largest; invalid or empty boxes last
    for b in range(bsz):
        areas = [float((ib[b, j, 2] - ib[b, j, 0]) * (ib[b, j, 3] - ib[b, j, 1])) for j in range(k)]
        areas = [a if bool(valid[b, j]) and a > 0 else -1.0 for j, a in enumerate(areas)]
        order.append(sorted(((j, a) for j, a in enumerate(areas)), key=lambda ja: -ja[1]))
    for step in range(k):
        u = torch.rand((bsz, 1, 2), generator=gen, dtype=torch.float64)
        for b in range(bsz):
            j, area = order[b][step]
            if area <= 0:
                continue
            x1, y1, x2, y2 = (int(v) for v in ib[b, j])
            r = float(r_img[b])
            cur = float(cut[b, 0, y1:y2, x1:x2].sum()) / area
            if cur > r:
                cut[b, 0, y1:y2, x1:x2] = False
                cur = 0.0
            need = max(r - cur, 0.0)
            if need <= 0:
                continue
            bw, bh = (x2 - x1) * math.sqrt(need), (y2 - y1) * math.sqrt(need)
            bx = torch.tensor(x1 + float(u[b, 0, 0]) * ((x2 - x1) - bw), dtype=torch.float64)
            by = torch.tensor(y1 + float(u[b, 0, 1]) * ((y2 - y1) - bh), dtype=torch.float64)
            _int_rect(cut, b, float(bx.round()), float(by.round()), float((bx + bw).round()),
                      float((by + bh).round()))
    return cut


def test_rcc_mask_matches_a_plain_implementation() -> None:
    g = _gen(2)
    boxes = torch.cat([_rand_boxes(g, 3, 3), torch.tensor([[[2.0, 2.0, 50.0, 34.0]]] * 3)], dim=1)  # nested
    boxes[1, 1] = torch.tensor([10.0, 8.0, 30.0, 30.0])  # another overlap
    valid = torch.ones(3, 4, dtype=torch.bool)
    valid[2, 0] = False
    got = rcc_mask(boxes, valid, (H, W), _gen(9), (0.2, 0.6))
    want = ref_rcc(boxes, valid, H, W, _gen(9), (0.2, 0.6))
    assert torch.equal(got, want)
    # every cut lies inside a (rounded) valid box
    assert got.any() and not (got & ~ref_rect_mask(boxes.round(), valid, H, W)).any()


def test_grid_pseudo_boxes_match_a_plain_implementation() -> None:
    h, w, n = 60, 90, 5
    got = grid_pseudo_boxes(n, (h, w), _gen(3))
    g = _gen(3)
    a = torch.rand((n, 9), generator=g, dtype=torch.float64) * (0.3 - 0.12) + 0.12
    r = torch.exp(torch.rand((n, 9), generator=g, dtype=torch.float64) * (math.log(2.0) - math.log(0.5))
                  + math.log(0.5))
    ux = torch.rand((n, 9), generator=g, dtype=torch.float64)
    uy = torch.rand((n, 9), generator=g, dtype=torch.float64)
    want = torch.zeros(n, 9, 4)
    for b in range(n):
        for c in range(9):
            gx, gy = c % 3, c // 3
            cx, cy = (gx + 0.25 + 0.5 * float(ux[b, c])) / 3, (gy + 0.25 + 0.5 * float(uy[b, c])) / 3
            bw, bh = math.sqrt(float(a[b, c] * r[b, c])), math.sqrt(float(a[b, c] / r[b, c]))
            want[b, c] = torch.tensor([max(cx - bw / 2, 0) * w, max(cy - bh / 2, 0) * h,
                                       min(cx + bw / 2, 1) * w, min(cy + bh / 2, 1) * h])
    assert torch.allclose(got, want, atol=1e-4)
    centre_y = (got[..., 1] + got[..., 3]) / 2 / h
    unclipped = (got[..., 1] > 0) & (got[..., 3] < h)
    assert ((centre_y * 3).floor()[unclipped] == (torch.arange(9) // 3).expand(n, 9)[unclipped].float()).all()


@pytest.mark.parametrize("pseudo", ["rois", "grid"])
def test_region_cutout_rcc_fills_the_rcc_mask(pseudo: str) -> None:
    g = _gen(4)
    images, fill = torch.randn(3, 3, H, W, generator=g), torch.randn(3, 3, H, W, generator=g)
    boxes = _rand_boxes(g, 3, 2)
    valid = torch.tensor([[True, True], [True, False], [True, True]])
    out, cut = region_cutout(images, boxes, valid, _gen(5), mode="rcc", ratio=(0.3, 0.5), pseudo_boxes=pseudo,
                             fill_source=fill)
    gen = _gen(5)
    if pseudo == "grid":
        pb = grid_pseudo_boxes(3, (H, W), gen)
        want = ref_rcc(pb, torch.ones(3, 9, dtype=torch.bool), H, W, gen, (0.3, 0.5))
    else:
        want = ref_rcc(boxes, valid, H, W, gen, (0.3, 0.5))
    assert torch.equal(cut, want)
    assert torch.equal(out, torch.where(want, fill, images))
    mean_fill, _ = region_cutout(images, boxes, valid, _gen(5), mode="rcc", ratio=(0.3, 0.5), pseudo_boxes=pseudo)
    assert torch.equal(mean_fill, images.masked_fill(want, 0.0))


def test_invert_half_complements_the_last_half_of_an_odd_batch() -> None:
    g = _gen(6)
    images = torch.randn(3, 3, H, W, generator=g)
    boxes, valid = _rand_boxes(g, 3, 2), torch.ones(3, 2, dtype=torch.bool)
    _, plain = region_cutout(images, boxes, valid, _gen(8), mode="rcc")
    out, inv = region_cutout(images, boxes, valid, _gen(8), mode="rcc", invert_half=True)
    assert torch.equal(inv[:2], plain[:2]) and torch.equal(inv[2], ~plain[2])
    assert torch.equal(out, images.masked_fill(inv, 0.0))


def test_downscale_reposition_matches_a_plain_implementation() -> None:
    g = _gen(10)
    h = H + 1  # an odd side: the x and y scale factors differ after rounding
    images, boxes = torch.randn(3, 3, h, W, generator=g), _rand_boxes(g, 3, 2, h=h)
    out, new = downscale_reposition(images, boxes, _gen(11), scale=0.5, canvas=0.75)
    sh, sw, ch, cw = round(h * 0.5), round(W * 0.5), round(h * 0.75), round(W * 0.75)
    assert sh / h != sw / W
    small = F.interpolate(images, size=(sh, sw), mode="bilinear", align_corners=False, antialias=True)
    gen = _gen(11)
    oy = torch.randint(0, ch - sh + 1, (3,), generator=gen)
    ox = torch.randint(0, cw - sw + 1, (3,), generator=gen)
    assert out.shape == (3, 3, ch, cw)
    for b in range(3):
        y, x = int(oy[b]), int(ox[b])
        want = torch.zeros(3, ch, cw)
        want[:, y:y + sh, x:x + sw] = small[b]
        assert torch.allclose(out[b], want, atol=1e-6)
        for k in range(2):
            x1, y1, x2, y2 = boxes[b, k].tolist()
            exp = [x1 * sw / W + x, y1 * sh / h + y, x2 * sw / W + x, y2 * sh / h + y]
            assert new[b, k].tolist() == pytest.approx(exp, abs=1e-4)
    assert len({(int(a), int(b)) for a, b in zip(ox, oy)}) > 1  # the offsets are random


def test_background_replace_in_place_matches_pixel_loops() -> None:
    g = _gen(12)
    images, bg = torch.randn(2, 3, H, W, generator=g), torch.randn(2, 3, H, W, generator=g)
    boxes = _rand_boxes(g, 2, 3) + 0.4
    valid = torch.tensor([[True, False, True], [True, True, True]])
    out, new = background_replace(images, boxes, valid, bg, _gen(0), reposition=False)
    assert torch.equal(new, boxes)
    assert torch.equal(out, torch.where(ref_rect_mask(boxes, valid, H, W), images, bg))


def test_background_replace_moved_matches_a_plain_implementation() -> None:
    g = _gen(13)
    images, bg = torch.randn(2, 3, H, W, generator=g), torch.randn(2, 3, H, W, generator=g)
    boxes = _rand_boxes(g, 2, 3) + 0.3
    valid = torch.tensor([[True, False, True], [True, True, True]])
    out, new = background_replace(images, boxes, valid, bg, _gen(14), reposition=True)
    u = torch.rand((2, 3, 2), generator=_gen(14), dtype=torch.float64)
    want, want_boxes = bg.clone(), boxes.clone()
    for k in range(3):  # pasted in order: a later box covers an earlier one
        for b in range(2):
            if not bool(valid[b, k]):
                continue
            x1, y1 = round(float(boxes[b, k, 0])), round(float(boxes[b, k, 1]))
            x2, y2 = min(round(float(boxes[b, k, 2])), W), min(round(float(boxes[b, k, 3])), H)
            bw, bh = x2 - x1, y2 - y1
            nx = min(math.floor(float(u[b, k, 0]) * max(W - bw + 1, 1)), W - bw)
            ny = min(math.floor(float(u[b, k, 1]) * max(H - bh + 1, 1)), H - bh)
            want[b, :, ny:ny + bh, nx:nx + bw] = images[b, :, y1:y2, x1:x2]
            want_boxes[b, k] = torch.tensor([nx, ny, nx + bw, ny + bh], dtype=torch.float32)
    assert torch.equal(new, want_boxes)
    assert torch.equal(out, want)
    assert not torch.equal(new[valid], boxes.round()[valid])  # the boxes moved


# ------------------------------------------------------------------ RoI correspondence


def _view_box(p: list[float], crop: list[float], flip: bool, size: int) -> list[float]:
    """Normalised source box -> pixels of a view of normalised ``crop`` (clipped), mirrored
    when the view is flipped."""
    cw, ch = crop[2] - crop[0], crop[3] - crop[1]
    x1 = min(max((p[0] - crop[0]) / cw, 0), 1) * size
    x2 = min(max((p[2] - crop[0]) / cw, 0), 1) * size
    y1 = min(max((p[1] - crop[1]) / ch, 0), 1) * size
    y2 = min(max((p[3] - crop[1]) / ch, 0), 1) * size
    return [size - x2, y1, size - x1, y2] if flip else [x1, y1, x2, y2]


def _hits(p: list[float], c1: list[float], c2: list[float]) -> bool:
    ov = [max(c1[0], c2[0]), max(c1[1], c2[1]), min(c1[2], c2[2]), min(c1[3], c2[3])]
    return p[0] < ov[2] and p[2] > ov[0] and p[1] < ov[3] and p[3] > ov[1]


def test_select_rois_pairs_the_same_proposal_in_both_views() -> None:
    g = _gen(20)
    n, k, sizes = 6, 3, (40, 24)
    crop1 = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * n)
    lo = torch.rand(n, 2, generator=g) * 0.4
    crop2 = torch.cat([lo, lo + 0.35 + torch.rand(n, 2, generator=g) * 0.25], dim=1)
    flip1, flip2 = torch.tensor([False, True] * 3), torch.tensor([True, True, False, False, True, False])
    meta = []
    for i in range(n):
        xy = torch.rand(6, 2, generator=g) * 0.7
        props = torch.cat([xy, xy + 0.1 + torch.rand(6, 2, generator=g) * 0.2], dim=1).clamp(max=1.0)
        props[5] = torch.tensor([0.0, 0.0, 0.02, 0.02]) if i % 2 else props[5]  # far from any crop-2
        meta.append({"boxes": props.tolist()})
    b1, b2, valid = select_rois(meta, crop1, crop2, flip1, flip2, sizes, StepRNG(0, 4), k=k, max_boxes=10,
                                jitter=0.1)
    checked = 0
    for i in range(n):
        c1, c2 = crop1[i].tolist(), crop2[i].tolist()
        hits = [p for p in meta[i]["boxes"] if _hits(p, c1, c2)]
        used = set()
        for j in range(min(k, len(hits))):
            found = [h for h, p in enumerate(hits)
                     if np.allclose(b1[i, j].tolist(), _view_box(p, c1, bool(flip1[i]), sizes[0]), atol=1e-4)
                     and np.allclose(b2[i, j].tolist(), _view_box(p, c2, bool(flip2[i]), sizes[1]), atol=1e-4)]
            assert found, (i, j)
            assert not used & set(found), (i, j)  # distinct proposals
            used |= set(found)
            checked += 1
        side1 = torch.minimum(b1[i, :, 2] - b1[i, :, 0], b1[i, :, 3] - b1[i, :, 1])
        side2 = torch.minimum(b2[i, :, 2] - b2[i, :, 0], b2[i, :, 3] - b2[i, :, 1])
        assert torch.equal(valid[i], (side1 >= 1) & (side2 >= 1))
    assert checked >= 12


def ref_select_rois(meta: list[dict[str, Any]], crop1: torch.Tensor, crop2: torch.Tensor, flip1: torch.Tensor,
                    flip2: torch.Tensor, sizes: tuple[int, int], rng: StepRNG, k: int, max_boxes: int,
                    jitter: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SoCo's RoI choice with python loops and the same draws: ``k`` proposals meeting the
    overlap of the crops in a random order, padded with copies picked at random and
    jittered by ``U(-jitter, jitter)`` of their size, drawn per view."""
    n = len(meta)
    keys, u_pick, u_jit = rng.rand(n, max_boxes), rng.rand(n, k), rng.rand(n, 2, k, 4)
    out = torch.zeros(2, n, k, 4)
    for i in range(n):
        c1, c2 = crop1[i].tolist(), crop2[i].tolist()
        props = [list(map(float, p)) for p in meta[i]["boxes"][:max_boxes]]
        cand = [p for p in props if _hits(p, c1, c2) and p[2] > p[0] and p[3] > p[1]]
        assert cand, "this reference covers images with proposals in the overlap"
        order = sorted(range(len(cand)), key=lambda j: float(keys[i, j])) if len(cand) > 1 else [0]
        base = [cand[j] for j in order[:k]]
        n_real = len(base)
        for j in range(k - n_real):
            base.append(cand[min(int(float(u_pick[i, j]) * len(cand)), len(cand) - 1)])
        for v, (crop, flip, size) in enumerate(((c1, bool(flip1[i]), sizes[0]), (c2, bool(flip2[i]), sizes[1]))):
            for j, p in enumerate(base):
                if j >= n_real:
                    w, h = p[2] - p[0], p[3] - p[1]
                    d = [(float(u) * 2 - 1) * jitter for u in u_jit[i, v, j]]
                    x0, y0 = p[0] + d[0] * w, p[1] + d[1] * h
                    p = [x0, y0, x0 + w * (1 + d[2]), y0 + h * (1 + d[3])]
                out[v, i, j] = torch.tensor(_view_box(p, crop, flip, size))
    return out[0], out[1]


def test_select_rois_matches_a_plain_implementation_with_padding() -> None:
    g = _gen(21)
    n, k, sizes = 5, 4, (40, 24)
    crop1 = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * n)
    lo = torch.rand(n, 2, generator=g) * 0.3
    crop2 = torch.cat([lo, lo + 0.5 + torch.rand(n, 2, generator=g) * 0.2], dim=1)
    flip1, flip2 = torch.tensor([False, True, False, True, True]), torch.tensor([True, False, False, True, False])
    meta = []
    for i in range(n):  # 1 to 5 proposals, all meeting the overlap
        m = i + 1
        xy = crop2[i, :2] + torch.rand(m, 2, generator=g) * 0.25
        meta.append({"boxes": torch.cat([xy, xy + 0.1 + torch.rand(m, 2, generator=g) * 0.2], 1).tolist()})
    b1, b2, _ = select_rois(meta, crop1, crop2, flip1, flip2, sizes, StepRNG(2, 7), k=k, max_boxes=10, jitter=0.2)
    r1, r2 = ref_select_rois(meta, crop1, crop2, flip1, flip2, sizes, StepRNG(2, 7), k=k, max_boxes=10, jitter=0.2)
    assert torch.allclose(b1, r1, atol=1e-4) and torch.allclose(b2, r2, atol=1e-4)
    # a padded copy is jittered in each view on its own: it does not map to one source box
    back = lambda b, c, s: [c[0] + b[0] / s * (c[2] - c[0]), c[0] + b[2] / s * (c[2] - c[0])]  # noqa: E731
    i, j = 2, 3  # three proposals and one padded copy, no flips
    assert len(meta[i]["boxes"]) == 3 and not flip1[i] and not flip2[i]
    src1 = back(b1[i, j].tolist(), crop1[i].tolist(), sizes[0])
    src2 = back(b2[i, j].tolist(), crop2[i].tolist(), sizes[1])
    assert np.allclose(back(b1[i, 0].tolist(), crop1[i].tolist(), sizes[0]),
                       back(b2[i, 0].tolist(), crop2[i].tolist(), sizes[1]), atol=1e-4)
    assert not np.allclose(src1, src2, atol=1e-3)


def test_select_rois_picks_proposals_at_random() -> None:
    whole = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    no = torch.tensor([False])
    props = [[0.1 * j, 0.1 * j, 0.1 * j + 0.3, 0.1 * j + 0.3] for j in range(6)]
    firsts = set()
    for step in range(6):
        b1, _, _ = select_rois([{"boxes": props}], whole, whole, no, no, (10, 10), StepRNG(0, step), k=2,
                               max_boxes=10, jitter=0.0)
        firsts.add(round(float(b1[0, 0, 0])))
    assert len(firsts) > 2


def test_select_rois_skips_proposals_outside_the_overlap_and_past_max_boxes() -> None:
    whole, right = torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([[0.5, 0.0, 1.0, 1.0]])
    no = torch.tensor([False])
    outside, inside, late = [0.05, 0.1, 0.4, 0.5], [0.6, 0.2, 0.9, 0.7], [0.55, 0.55, 0.95, 0.95]
    for step in range(4):
        b1, b2, valid = select_rois([{"boxes": [outside, inside, late]}], whole, right, no, no, (20, 20),
                                    StepRNG(1, step), k=2, max_boxes=2, jitter=0.0)
        want1, want2 = _view_box(inside, whole[0].tolist(), False, 20), _view_box(inside, right[0].tolist(), False, 20)
        assert np.allclose(b1[0].tolist(), [want1, want1]) and np.allclose(b2[0].tolist(), [want2, want2])
        assert valid.all()


def test_rois_thinner_than_a_pixel_in_either_view_are_invalid() -> None:
    left, right = torch.tensor([[0.0, 0.0, 0.4, 1.0]]), torch.tensor([[0.6, 0.0, 1.0, 1.0]])
    no = torch.tensor([False])
    b1, b2, valid = select_rois([{"boxes": [[0.1, 0.1, 0.3, 0.3]]}], left, right, no, no, (20, 20), StepRNG(0, 0),
                                k=2, max_boxes=8, jitter=0.0)
    assert torch.allclose(b2[0], torch.tensor([[0.0, 0.0, 20.0, 20.0]] * 2))  # disjoint crops: crop 2 itself
    assert not valid.any()
    # a proposal that only grazes crop 2: 8 px wide in view 1, 0.4 px in view 2 (and the reverse)
    whole, right = torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([[0.5, 0.0, 1.0, 1.0]])
    graze, wide = [0.1, 0.1, 0.51, 0.9], [0.55, 0.2, 0.9, 0.6]
    b1, b2, valid = select_rois([{"boxes": [graze, wide]}], whole, right, no, no, (20, 20), StepRNG(0, 1),
                                k=2, max_boxes=8, jitter=0.0)
    thin = [bool(b2[0, j, 2] - b2[0, j, 0] < 1) for j in range(2)]
    assert sorted(thin) == [False, True]
    assert (b1[0, :, 2] - b1[0, :, 0] >= 1).all()
    assert valid[0].tolist() == [not t for t in thin]
    b2, b1, valid = select_rois([{"boxes": [graze, wide]}], right, whole, no, no, (20, 20), StepRNG(0, 1),
                                k=2, max_boxes=8, jitter=0.0)
    assert valid[0].tolist() == [not bool(b2[0, j, 2] - b2[0, j, 0] < 1) for j in range(2)]


def _coordinate_batch(n: int = 4) -> RawBatch:
    """Images whose red/green values are the normalised x/y of each pixel centre, with a
    few proposals (none symmetric about the vertical centre line)."""
    h, w = 40, 56
    xs = (torch.arange(w) + 0.5) / w
    ys = (torch.arange(h) + 0.5) / h
    img = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.full((h, w), 0.5)])
    img = (img * 255).round().to(torch.uint8)
    props = [[[0.05, 0.1, 0.35, 0.45], [0.55, 0.5, 0.95, 0.9], [0.3, 0.55, 0.6, 0.95]],
             [[0.6, 0.05, 0.9, 0.4], [0.1, 0.45, 0.45, 0.85]],
             [[0.15, 0.15, 0.5, 0.7], [0.62, 0.3, 0.92, 0.6], [0.05, 0.7, 0.3, 0.95]],
             [[0.4, 0.1, 0.85, 0.4], [0.08, 0.4, 0.38, 0.8]]]
    return collate([{"image": img.clone(), "index": i, "meta": {"boxes": props[i % 4]}} for i in range(n)])


def _source_range(view: torch.Tensor, box: torch.Tensor | None = None) -> list[float] | None:
    """Normalised source box ``(x1, y1, x2, y2)`` spanned by the pixel centres of ``view``
    inside ``box`` (the whole view when None), read from the coordinate colours."""
    _, s, _ = view.shape
    mask = torch.ones(s, s, dtype=torch.bool)
    if box is not None:
        c = torch.arange(s) + 0.5
        x1, y1, x2, y2 = box.tolist()
        mask = ((c[None] >= x1) & (c[None] < x2)) & ((c[:, None] >= y1) & (c[:, None] < y2))
        if mask.sum(dim=1).max() < 2 or mask.sum(dim=0).max() < 2:
            return None
    r, g = view[0][mask], view[1][mask]
    return [r.min().item(), g.min().item(), r.max().item(), g.max().item()]


def test_rois_of_both_views_cover_the_same_source_region() -> None:
    """End to end through the augmentation: each RoI of view 1 and its partner in view 2
    show the same proposal (clipped to each crop), flips and unequal view sizes included."""
    plain = {"jitter_p": 0.0, "gray_p": 0.0, "blur_p": 0.0, "solarize_p": 0.0, "mean": [0, 0, 0], "std": [1, 1, 1]}
    cfg = {"augment": {**plain, "blur_kernel": 3, "view1": {"size": 64, "scale": [1.0, 1.0], "ratio": [0.1, 10.0]},
                       "view2": {"size": 48, "scale": [0.5, 0.8]}},
           "roi": {"per_image": 2, "jitter": 0.0}}
    raw = _coordinate_batch(8)
    tol = 0.035  # about one view pixel in source units
    checked, flipped = 0, 0
    for step in range(2):
        batch = D3SSLBatch(cfg)(raw, StepRNG(0, step))
        for i in range(len(raw)):
            x1, x2 = batch["x1"][i], batch["x2"][i]
            flipped += int(x2[0, 0, 0] > x2[0, 0, -1]) + int(x1[0, 0, 0] > x1[0, 0, -1])
            crop2 = _source_range(x2)
            props = raw.meta[i]["boxes"]
            for k in range(2):
                if not bool(batch["valid"][i, k]):
                    continue
                r1, r2 = _source_range(x1, batch["boxes1"][i, k]), _source_range(x2, batch["boxes2"][i, k])
                if r1 is None or r2 is None:
                    continue
                assert any(np.allclose(r1, p, atol=tol) for p in props), (step, i, k, r1)
                clipped = [max(r1[0], crop2[0]), max(r1[1], crop2[1]), min(r1[2], crop2[2]), min(r1[3], crop2[3])]
                assert np.allclose(r2, clipped, atol=tol), (step, i, k, r2, clipped)
                checked += 1
    assert checked >= 20 and flipped >= 4


# ------------------------------------------------------------------ module views


SIZE = 32


def _views_cfg(module: str, views: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    plain = {"jitter_p": 0.0, "gray_p": 0.0, "blur_p": 0.0}
    cfg = {"augment": {**plain, "blur_kernel": 3, "view1": {"size": SIZE, "scale": [1.0, 1.0], "ratio": [0.1, 10.0]},
                       "view2": {"size": SIZE, "scale": [0.6, 1.0]}},
           "roi": {"per_image": 3},
           module: {"enabled": True, "weight": 0.5, "sample_ratio": 0.5, "views": views},
           "cutout": {"mode": "rcc", "ratio": [0.3, 0.5]}, "small_view": {"scale": 0.5, "canvas": 0.75}}
    for key, value in extra.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    return cfg


def _batch(cfg: dict[str, Any], step: int = 0, n: int = 4) -> dict[str, Any]:
    """A batch of random images with three proposals each."""
    return D3SSLBatch(cfg)(raw_batch(n, 3), StepRNG(0, step))


def _other_row(batch: dict[str, Any], image: torch.Tensor, where: torch.Tensor, own: int) -> int:
    """The row of ``x1`` that ``image`` shows at the pixels ``where`` (H, W)."""
    rows = [j for j in range(batch["x1"].shape[0]) if torch.equal(image[:, where], batch["x1"][j][:, where])]
    assert len(rows) == 1 and rows[0] != own, rows
    return rows[0]


def _check_subset(view: dict[str, Any], batch: dict[str, Any], source: str) -> torch.Tensor:
    idx = view["index"]
    assert len(idx) == 2 and idx.tolist() == sorted(set(idx.tolist()))
    key = "boxes1" if source == "x1" else "boxes2"
    assert torch.equal(view["valid"], batch["valid"][idx])
    return batch[key][idx]


def test_in_place_background_keeps_the_boxes_of_the_source_view() -> None:
    batch = _batch(_views_cfg("depositioning", [{"source": "x2", "background": "in_place", "targets": ["x1"]}]))
    (view,) = batch["modules"]["depositioning"]
    boxes = _check_subset(view, batch, "x2")
    assert torch.equal(view["boxes"], boxes) and view["scale"] == 1.0 and view["targets"] == ("x1",)
    keep = ref_rect_mask(boxes, view["valid"], SIZE, SIZE)[:, 0]
    for r, i in enumerate(view["index"].tolist()):
        assert torch.equal(view["images"][r][:, keep[r]], batch["x2"][i][:, keep[r]])
        _other_row(batch, view["images"][r], ~keep[r], i)


@pytest.mark.parametrize("invert", [False, True])
def test_decoupling_cutout_cuts_inside_the_boxes_and_inverts_the_second_half(invert: bool) -> None:
    cfg = _views_cfg("decoupling", [{"source": "x1", "cutout": True, "targets": ["x2"]}])
    cfg["decoupling"]["invert_half"] = invert
    batch = _batch(cfg, 1)
    (view,) = batch["modules"]["decoupling"]
    boxes = _check_subset(view, batch, "x1")
    assert torch.equal(view["boxes"], boxes) and view["targets"] == ("x2",)
    inside = ref_rect_mask(boxes.round(), view["valid"], SIZE, SIZE)[:, 0]
    for r, i in enumerate(view["index"].tolist()):
        changed = (view["images"][r] != batch["x1"][i]).any(dim=0)
        assert changed.any()
        if invert and r == 1:  # the complement: everything outside the boxes is cut
            assert changed[~inside[r]].all()
        else:
            assert not (changed & ~inside[r]).any()
        _other_row(batch, view["images"][r], changed, i)


def test_small_view_is_the_downscaled_source_on_a_zero_canvas() -> None:
    batch = _batch(_views_cfg("decoupling", [{"source": "x2", "small": True, "targets": ["x1"]}]), 2)
    (view,) = batch["modules"]["decoupling"]
    boxes = _check_subset(view, batch, "x2")
    assert view["scale"] == 0.5 and view["images"].shape == (2, 3, 24, 24)
    small = F.interpolate(batch["x2"][view["index"]], size=(16, 16), mode="bilinear", align_corners=False,
                          antialias=True)
    offsets = set()
    for r in range(2):
        off = view["boxes"][r, 0, :2] - boxes[r, 0, :2] * 0.5
        ox, oy = round(off[0].item()), round(off[1].item())
        offsets.add((ox, oy))
        assert torch.allclose(view["boxes"][r], boxes[r] * 0.5 + torch.tensor([ox, oy, ox, oy]), atol=1e-5)
        want = torch.zeros(3, 24, 24)
        want[:, oy:oy + 16, ox:ox + 16] = small[r]
        assert torch.allclose(view["images"][r], want, atol=1e-5)


def test_moved_background_pastes_the_source_boxes_onto_another_image() -> None:
    batch = _batch(_views_cfg("depositioning", [{"source": "x2", "background": "moved", "targets": ["x1", "x2"]}]),
                   3)
    (view,) = batch["modules"]["depositioning"]
    boxes = _check_subset(view, batch, "x2")
    assert view["targets"] == ("x1", "x2")
    pasted = ref_rect_mask(view["boxes"], view["valid"], SIZE, SIZE)[:, 0]
    for r, i in enumerate(view["index"].tolist()):
        _other_row(batch, view["images"][r], ~pasted[r], i)
        k = max(j for j in range(3) if bool(view["valid"][r, j]))  # the last pasted box is whole
        x1, y1, x2, y2 = (int(v) for v in view["boxes"][r, k])
        o1, p1 = (round(float(v)) for v in boxes[r, k, :2])
        assert (x2 - x1, y2 - y1) == (round(float(boxes[r, k, 2])) - o1, round(float(boxes[r, k, 3])) - p1)
        assert torch.equal(view["images"][r][:, y1:y2, x1:x2], batch["x2"][i][:, p1:p1 + y2 - y1, o1:o1 + x2 - x1])


def test_base_cutout_cuts_view_2_inside_its_boxes_only() -> None:
    views = [{"source": "x1", "cutout": True, "targets": ["x2"]}]
    plain = _batch(_views_cfg("decoupling", views, base_cutout={"prob": 0.0}), 4)
    cut = _batch(_views_cfg("decoupling", views, base_cutout={"prob": 1.0, "ratio": [0.2, 0.3]}), 4)
    assert torch.equal(plain["x1"], cut["x1"]) and torch.equal(plain["boxes2"], cut["boxes2"])
    changed = (plain["x2"] != cut["x2"]).any(dim=1)
    inside = ref_rect_mask(cut["boxes2"], cut["valid"], SIZE, SIZE)[:, 0]
    assert changed.any() and not (changed & ~inside).any()
    assert (cut["x2"].permute(1, 0, 2, 3)[:, changed] == 0).all()  # the mean colour
    for i in range(4):
        assert changed[i].any() == bool(cut["valid"][i].any())
    # each box is cut with probability ``prob``: the same draws with prob 0.5 cut a strict subset
    half = _batch(_views_cfg("decoupling", views, base_cutout={"prob": 0.5, "ratio": [0.2, 0.3]}), 4)
    some = (plain["x2"] != half["x2"]).any(dim=1)
    assert some.any() and not (some & ~changed).any() and some.sum() < changed.sum()


@pytest.mark.parametrize("ratio,n,size", [(0.25, 8, 2), (0.3, 8, 2), (0.45, 4, 2), (0.1, 4, 1), (1.0, 4, 4)])
def test_sample_ratio_sets_the_subset_size_and_each_view_draws_its_own(ratio: float, n: int, size: int) -> None:
    views = [{"source": "x1", "cutout": True, "targets": ["x2"]}] * 4
    cfg = _views_cfg("decoupling", views)
    cfg["decoupling"]["sample_ratio"] = ratio
    batch = _batch(cfg, 5, n=n)
    subsets = [tuple(v["index"].tolist()) for v in batch["modules"]["decoupling"]]
    assert all(len(s) == size and list(s) == sorted(set(s)) for s in subsets)
    assert len(set(subsets)) > 1 or size == n


# ------------------------------------------------------------------ proposals


def test_filter_boxes_converts_xywh_pixels_to_normalised_corners() -> None:
    cfg = ProposalCfg(min_size=4, max_aspect=3.0, size_range=(0.1, 0.9), max_boxes=3)
    width, height = 200, 100
    boxes = [[10, 20, 40, 30],    # kept
             [0, 0, 3, 50],       # too thin
             [50, 10, 100, 20],   # aspect 5
             [120, 40, 90, 60],   # kept, clipped at the right border
             [0, 0, 200, 100],    # sqrt-area fraction 1.0
             [5, 5, 8, 8],        # sqrt-area fraction 0.057
             [30, 50, 20, 40],    # kept
             [60, 60, 30, 30]]    # past max_boxes
    out = filter_boxes(np.array(boxes, dtype=np.float64), width, height, cfg)
    want = [[10 / 200, 20 / 100, 50 / 200, 50 / 100], [120 / 200, 40 / 100, 1.0, 1.0],
            [30 / 200, 50 / 100, 50 / 200, 90 / 100]]
    assert out.shape == (3, 4) and np.allclose(out, want)
    assert filter_boxes(np.zeros((0, 4)), width, height, cfg).shape == (0, 4)


def test_proposal_filter_bounds_are_inclusive() -> None:
    cfg = ProposalCfg(min_size=10, max_aspect=2.0, size_range=(0.1, 0.5), max_boxes=10)
    boxes = [[0, 0, 10, 20],   # sides at min_size, aspect exactly 2: kept
             [0, 0, 9, 30],    # a side under min_size
             [0, 0, 10, 21],   # aspect 2.1
             [0, 0, 50, 50],   # sqrt-area fraction exactly 0.5: kept
             [0, 0, 51, 50],   # 0.505
             [0, 0, 10, 10]]   # exactly 0.1: kept
    out = filter_boxes(np.array(boxes, dtype=np.float64), 100, 100, cfg)
    assert np.allclose(out, [[0, 0, 0.1, 0.2], [0, 0, 0.5, 0.5], [0, 0, 0.1, 0.1]])


def test_selective_search_proposals_use_width_and_height_of_each_image(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.pretrain.selective_search as ss
    from harness.api import StageContext

    root = _write_scenes(tmp_path / "data", [(50, 80), (60, 60)])
    raw = [np.array([[8, 5, 40, 30], [0, 0, 2, 2]], dtype=np.int32), np.array([[6, 12, 30, 24]], dtype=np.int32)]
    monkeypatch.setattr(ss, "compute_proposals", lambda *a, **k: 0)
    monkeypatch.setattr(ss, "load_proposals", lambda cache, names: (raw, np.array([[80, 50], [60, 60]])))
    cfg = {"data": {"dirs": ["coco/train2017"]},
           "proposals": {"source": "selective_search", "min_size": 4, "size_range": [0.1, 0.9]}}
    ctx = StageContext(name="proposals", cfg=cfg, workdir=tmp_path / "work", data_root=root, seed=0, device="cpu",
                       preset="tiny", method="d3ssl", recipe="t", config_hash="x")
    summary = run_proposals(ctx)
    assert summary["images"] == 2
    boxes = json.loads((tmp_path / "work" / PROPOSALS_FILE).read_text())["boxes"]
    names = sorted(boxes)
    assert np.allclose(boxes[names[0]], [[8 / 80, 5 / 50, 48 / 80, 35 / 50]], atol=1e-5)
    assert np.allclose(boxes[names[1]], [[6 / 60, 12 / 60, 36 / 60, 36 / 60]], atol=1e-5)


def _write_scenes(root: Path, sizes: list[tuple[int, int]]) -> Path:
    folder = root / "coco" / "train2017"
    folder.mkdir(parents=True)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(np.full((h, w, 3), 40 * i, dtype=np.uint8)).save(folder / f"{i + 1:012d}.jpg")
    return root


def test_annotation_proposals_are_the_non_crowd_boxes(tmp_path: Path) -> None:
    from harness.api import StageContext

    root = _write_scenes(tmp_path / "data", [(50, 80), (60, 60)])
    ann = {"images": [{"id": 1, "file_name": "000000000001.jpg", "width": 80, "height": 50},
                      {"id": 2, "file_name": "000000000002.jpg", "width": 60, "height": 60}],
           "categories": [{"id": 1, "name": "thing"}],
           "annotations": [
               {"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 5, 40, 30], "iscrowd": 0, "area": 1.0,
                "segmentation": [[8, 5, 48, 5, 48, 35]]},
               {"id": 2, "image_id": 1, "category_id": 1, "bbox": [30, 10, 40, 30], "iscrowd": 1, "area": 1.0,
                "segmentation": {"counts": [0, 1], "size": [50, 80]}},
               {"id": 3, "image_id": 2, "category_id": 1, "bbox": [6, 12, 30, 24], "iscrowd": 0, "area": 1.0,
                "segmentation": [[6, 12, 36, 12, 36, 36]]}]}
    (root / "coco" / "annotations").mkdir()
    (root / "coco" / "annotations" / "instances_train2017.json").write_text(json.dumps(ann))
    cfg = {"data": {"dirs": ["coco/train2017"]},
           "proposals": {"source": "annotations", "min_size": 4, "size_range": [0.1, 0.9]}}
    ctx = StageContext(name="proposals", cfg=cfg, workdir=tmp_path / "work", data_root=root, seed=0, device="cpu",
                       preset="tiny", method="d3ssl", recipe="t", config_hash="x")
    run_proposals(ctx)
    loaded = load_proposals_file(tmp_path / "work" / PROPOSALS_FILE)
    assert np.allclose(loaded["coco/train2017/000000000001.jpg"], [[8 / 80, 5 / 50, 48 / 80, 35 / 50]], atol=1e-5)
    assert np.allclose(loaded["coco/train2017/000000000002.jpg"], [[0.1, 0.2, 0.6, 0.6]], atol=1e-5)
    meta = ProposalMeta(loaded, root)
    got = meta(1, root / "coco" / "train2017" / "000000000002.jpg")["boxes"]
    assert got.dtype == np.float32 and np.allclose(got, [[0.1, 0.2, 0.6, 0.6]], atol=1e-5)
