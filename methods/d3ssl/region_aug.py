"""The three region augmentations of D3SSL, batched on tensors (CPU or GPU).

All functions take a batch of images ``(B, C, H, W)`` (any float dtype, usually
normalised so that 0 is the dataset mean colour), RoI boxes ``(B, K, 4)`` as
``(x1, y1, x2, y2)`` in pixels of those images, a ``valid`` mask ``(B, K)`` and a CPU
``torch.Generator`` that makes every draw reproducible. Nothing is modified in place.

- :func:`region_cutout`: cut-out / masking inside and around the boxes; ``"box"`` mode
  cuts one block inside each box and one in the band around it, ``"rcc"`` mode is the
  Region Collaborative Cutout of the ICLR 2024 follow-up (boxes processed from the
  largest, each ending with about ``ratio`` of its area cut, overlapping boxes sharing
  cuts), on the RoIs or on its 3x3 grid of pseudo boxes.
- :func:`downscale_reposition`: a down-scaled copy placed at a random offset on a
  zero canvas (zero = mean colour, like the network's zero padding), which changes every
  object's absolute position and its distance to the borders.
- :func:`background_replace`: the box contents pasted onto another image (e.g. of the
  batch), in place or at new random positions.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

def _uniform(gen: torch.Generator, shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
    return torch.rand(shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo


def rect_mask(rects: torch.Tensor, valid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Union of integer-pixel rectangles as a bool mask ``(B, 1, H, W)``.

    ``rects`` ``(B, M, 4)`` ``(x1, y1, x2, y2)``: a pixel (x, y) is inside when its centre
    ``(x + .5, y + .5)`` lies in ``[x1, x2) x [y1, y2)``. Rows with ``valid`` False are ignored.
    """
    dev = rects.device
    xs = torch.arange(width, device=dev, dtype=rects.dtype) + 0.5
    ys = torch.arange(height, device=dev, dtype=rects.dtype) + 0.5
    out = torch.zeros((rects.shape[0], 1, height, width), dtype=torch.bool, device=dev)
    for m in range(rects.shape[1]):
        r = rects[:, m]
        inx = (xs[None] >= r[:, 0:1]) & (xs[None] < r[:, 2:3])  # (B, W)
        iny = (ys[None] >= r[:, 1:2]) & (ys[None] < r[:, 3:4])  # (B, H)
        out |= (iny[:, :, None] & inx[:, None, :] & valid[:, m, None, None])[:, None]
    return out


def _inner_blocks(boxes: torch.Tensor, frac: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One block per box with the box's aspect ratio and ``frac`` of its area, placed
    uniformly inside the box; returns ``(B, K, 4)``."""
    w = (boxes[..., 2] - boxes[..., 0]).clamp(min=0)
    h = (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    s = frac.sqrt()
    bw, bh = w * s, h * s
    u = torch.rand(boxes.shape[:2] + (2,), generator=gen, dtype=torch.float64).to(boxes)
    x1 = boxes[..., 0] + u[..., 0] * (w - bw)
    y1 = boxes[..., 1] + u[..., 1] * (h - bh)
    return torch.stack([x1, y1, x1 + bw, y1 + bh], dim=-1)


def _around_blocks(boxes: torch.Tensor, frac: torch.Tensor, band: float, gen: torch.Generator) -> torch.Tensor:
    """One block per box (same size rule as the inner block) centred in the band just
    outside one of the box's four sides (side uniform, depth ``U(0, band) x`` the box's
    size on that axis, position along the side uniform); returns ``(B, K, 4)``."""
    shape = boxes.shape[:2]
    w = (boxes[..., 2] - boxes[..., 0]).clamp(min=0)
    h = (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    s = frac.sqrt()
    bw, bh = w * s, h * s
    side = torch.randint(0, 4, shape, generator=gen).to(boxes.device)
    depth = torch.rand(shape, generator=gen, dtype=torch.float64).to(boxes) * band
    along = torch.rand(shape, generator=gen, dtype=torch.float64).to(boxes)
    cx_h = boxes[..., 0] + along * w  # centre along a horizontal side
    cy_v = boxes[..., 1] + along * h  # centre along a vertical side
    cx = torch.where(side == 0, boxes[..., 0] - depth * w,
                     torch.where(side == 1, boxes[..., 2] + depth * w, cx_h))
    cy = torch.where(side == 2, boxes[..., 1] - depth * h,
                     torch.where(side == 3, boxes[..., 3] + depth * h, cy_v))
    return torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-1)


def box_cutout_mask(boxes: torch.Tensor, valid: torch.Tensor, size: tuple[int, int], gen: torch.Generator,
                    ratio: tuple[float, float] = (0.1, 0.3), around: bool = True, band: float = 0.5,
                    prob: float = 1.0) -> torch.Tensor:
    """Cut mask ``(B, 1, H, W)`` of ``"box"`` mode: for each valid box, with probability
    ``prob``, a block of ``U(ratio)`` of its area inside it and (``around``) one of the
    same size in the band around it."""
    shape = tuple(boxes.shape[:2])
    frac = _uniform(gen, shape, *ratio).to(boxes)
    chosen = valid & (torch.rand(shape, generator=gen) < prob).to(valid.device)
    rects = [_inner_blocks(boxes, frac, gen)]
    if around:
        rects.append(_around_blocks(boxes, frac, band, gen))
    allr = torch.cat(rects, dim=1)
    return rect_mask(allr, chosen.repeat(1, len(rects)), *size)


def grid_pseudo_boxes(batch: int, size: tuple[int, int], gen: torch.Generator, grid: int = 3,
                      area: tuple[float, float] = (0.12, 0.3), aspect: tuple[float, float] = (0.5, 2.0)
                      ) -> torch.Tensor:
    """The follow-up's pseudo boxes ``(B, grid*grid, 4)`` in pixels: one per grid cell,
    centre uniform in the cell's central half, area ``U(area)`` of the image, aspect
    log-uniform in ``aspect``, clipped to the image."""
    h, w = size
    n = grid * grid
    a = _uniform(gen, (batch, n), *area)
    r = torch.exp(_uniform(gen, (batch, n), math.log(aspect[0]), math.log(aspect[1])))
    bw, bh = (a * r).sqrt(), (a / r).sqrt()
    cell = torch.arange(n, dtype=torch.float64)
    gx, gy = (cell % grid)[None], torch.div(cell, grid, rounding_mode="floor")[None]
    cx = (gx + 0.25 + 0.5 * torch.rand((batch, n), generator=gen, dtype=torch.float64)) / grid
    cy = (gy + 0.25 + 0.5 * torch.rand((batch, n), generator=gen, dtype=torch.float64)) / grid
    x1, y1 = (cx - bw / 2).clamp(min=0), (cy - bh / 2).clamp(min=0)
    x2, y2 = (cx + bw / 2).clamp(max=1), (cy + bh / 2).clamp(max=1)
    return torch.stack([x1 * w, y1 * h, x2 * w, y2 * h], dim=-1).float()


def _rect_sums(cut: torch.Tensor, rects: torch.Tensor) -> torch.Tensor:
    """Number of cut pixels inside integer rectangles, one per image: ``(B,)``."""
    ii = F.pad(cut[:, 0].double().cumsum(1).cumsum(2), (1, 0, 1, 0))
    b = torch.arange(cut.shape[0], device=cut.device)
    x1, y1, x2, y2 = (rects[:, i].long() for i in range(4))
    return ii[b, y2, x2] - ii[b, y1, x2] - ii[b, y2, x1] + ii[b, y1, x1]


def rcc_mask(boxes: torch.Tensor, valid: torch.Tensor, size: tuple[int, int], gen: torch.Generator,
             ratio: tuple[float, float] = (0.2, 0.6)) -> torch.Tensor:
    """Region Collaborative Cutout mask ``(B, 1, H, W)`` (True = cut).

    One ratio ``U(ratio)`` per image. Boxes are visited from the largest; when more than
    ``ratio`` of a box is already cut, the box is restored first; then a block with the
    box's aspect and ``ratio`` minus the box's current cut fraction of its area is cut
    at a uniform position inside the box (it may overlap earlier cuts).
    """
    h, w = size
    bsz, k = boxes.shape[:2]
    dev = boxes.device
    r_img = _uniform(gen, (bsz,), *ratio).to(dev)
    ib = torch.stack([boxes[..., 0].round().clamp(0, w), boxes[..., 1].round().clamp(0, h),
                      boxes[..., 2].round().clamp(0, w), boxes[..., 3].round().clamp(0, h)], dim=-1)
    area = ((ib[..., 2] - ib[..., 0]) * (ib[..., 3] - ib[..., 1])).double()
    area = torch.where(valid & (area > 0), area, torch.full_like(area, -1.0))
    order = area.argsort(dim=1, descending=True)
    cut = torch.zeros((bsz, 1, h, w), dtype=torch.bool, device=dev)
    b = torch.arange(bsz, device=dev)
    for j in range(k):
        box = ib[b, order[:, j]]  # (B, 4)
        a = area[b, order[:, j]]
        ok = a > 0
        cur = _rect_sums(cut, box) / a.clamp(min=1)
        restore = ok & (cur > r_img)
        if restore.any():
            inside = rect_mask(box[:, None], restore[:, None], h, w)
            cut &= ~inside
            cur = torch.where(restore, torch.zeros_like(cur), cur)
        need = (r_img - cur).clamp(min=0)
        blk = _inner_blocks(box[:, None].double(), need[:, None], gen)[:, 0].round()
        cut |= rect_mask(blk[:, None].to(boxes.dtype), (ok & (need > 0))[:, None], h, w)
    return cut


def region_cutout(images: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor, gen: torch.Generator, *,
                  mode: str = "box", ratio: tuple[float, float] = (0.1, 0.3), around: bool = True,
                  band: float = 0.5, prob: float = 1.0, pseudo_boxes: str = "rois", invert_half: bool = False,
                  fill_source: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut out regions inside and around the boxes; returns ``(images, cut_mask)``.

    ``mode``: ``"box"`` (:func:`box_cutout_mask`, each box cut with probability ``prob``)
    or ``"rcc"`` (:func:`rcc_mask`, on the RoIs when ``pseudo_boxes == "rois"`` or on the
    follow-up's 3x3 grid when ``"grid"``).
    ``invert_half``: the second half of the batch gets the complement of its mask (as
    the follow-up does for half of its de-coupling samples). Cut pixels become 0 (the mean
    colour of normalised images) or, with ``fill_source`` (same shape), its pixels.
    """
    size = tuple(images.shape[-2:])
    if mode == "box":
        cut = box_cutout_mask(boxes, valid, size, gen, ratio, around, band, prob)
    elif mode == "rcc":
        if pseudo_boxes == "grid":
            pb = grid_pseudo_boxes(images.shape[0], size, gen).to(boxes)
            cut = rcc_mask(pb, torch.ones(pb.shape[:2], dtype=torch.bool, device=pb.device), size, gen, ratio)
        elif pseudo_boxes == "rois":
            cut = rcc_mask(boxes, valid, size, gen, ratio)
        else:
            raise ValueError(f"unknown RCC pseudo_boxes {pseudo_boxes!r}; expected 'rois' or 'grid'")
    else:
        raise ValueError(f"unknown cut-out mode {mode!r}; expected 'box' or 'rcc'")
    if invert_half:
        half = images.shape[0] // 2
        cut = torch.cat([cut[: images.shape[0] - half], ~cut[images.shape[0] - half:]])
    if fill_source is None:
        return images.masked_fill(cut, 0.0), cut
    return torch.where(cut, fill_source, images), cut


def downscale_reposition(images: torch.Tensor, boxes: torch.Tensor, gen: torch.Generator, *,
                         scale: float = 0.5, canvas: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Down-scale the batch by ``scale`` and place each image at a random offset on a
    zero canvas whose side is ``canvas`` times the input's; returns ``(images, boxes)``.

    ``canvas == scale`` is a plain down-scaled view; ``canvas > scale`` also moves the
    content (and its borders with the zero fill) to a random place.
    """
    if not 0 < scale <= canvas:
        raise ValueError(f"need 0 < scale <= canvas, got scale={scale}, canvas={canvas}")
    bsz, ch, h, w = images.shape
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    chh, cww = max(sh, round(h * canvas)), max(sw, round(w * canvas))
    small = F.interpolate(images, size=(sh, sw), mode="bilinear", align_corners=False, antialias=True)
    oy = torch.randint(0, chh - sh + 1, (bsz,), generator=gen)
    ox = torch.randint(0, cww - sw + 1, (bsz,), generator=gen)
    out = images.new_zeros((bsz, ch, chh, cww))
    for i in range(bsz):
        y, x = int(oy[i]), int(ox[i])
        out[i, :, y:y + sh, x:x + sw] = small[i]
    sx, sy = sw / w, sh / h
    off = torch.stack([ox, oy, ox, oy], dim=-1).to(boxes)[:, None]
    new = boxes * boxes.new_tensor([sx, sy, sx, sy]) + off
    return out, new


def _shift_gather(images: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """``out[b, :, y, x] = images[b, :, y - dy[b], x - dx[b]]`` (clamped at the borders)."""
    bsz, ch, h, w = images.shape
    dev = images.device
    xs = (torch.arange(w, device=dev)[None] - dx[:, None]).clamp(0, w - 1)  # (B, W)
    ys = (torch.arange(h, device=dev)[None] - dy[:, None]).clamp(0, h - 1)  # (B, H)
    idx = (ys[:, :, None] * w + xs[:, None, :]).reshape(bsz, 1, h * w).expand(bsz, ch, h * w)
    return images.reshape(bsz, ch, h * w).gather(2, idx).reshape(bsz, ch, h, w)


def background_replace(images: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor, background: torch.Tensor,
                       gen: torch.Generator, *, reposition: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste each image's box contents onto ``background`` (same shape, e.g. other images
    of the batch); returns ``(images, boxes)``.

    ``reposition=False`` keeps every box where it was (only the surroundings change);
    ``True`` moves each box (rounded to whole pixels, size kept) to a uniform random
    position inside the image, pasting boxes in order (a later box may cover part of an
    earlier one). Invalid boxes are neither pasted nor moved.
    """
    h, w = images.shape[-2:]
    base = background
    if not reposition:
        keep = rect_mask(boxes, valid, h, w)
        return torch.where(keep, images, base), boxes
    ib = torch.stack([boxes[..., 0].round().clamp(0, w), boxes[..., 1].round().clamp(0, h),
                      boxes[..., 2].round().clamp(0, w), boxes[..., 3].round().clamp(0, h)], dim=-1)
    bw, bh = ib[..., 2] - ib[..., 0], ib[..., 3] - ib[..., 1]
    u = torch.rand(boxes.shape[:2] + (2,), generator=gen, dtype=torch.float64).to(boxes.device)
    nx = (u[..., 0] * (w - bw + 1).clamp(min=1)).floor().clamp(max=w - bw)
    ny = (u[..., 1] * (h - bh + 1).clamp(min=1)).floor().clamp(max=h - bh)
    new = torch.stack([nx, ny, nx + bw, ny + bh], dim=-1)
    new = torch.where(valid[..., None], new.to(boxes.dtype), boxes)
    out = base
    for k in range(boxes.shape[1]):
        moved = _shift_gather(images, (nx[:, k] - ib[:, k, 0]).long(), (ny[:, k] - ib[:, k, 1]).long())
        m = rect_mask(new[:, k:k + 1], valid[:, k:k + 1], h, w)
        out = torch.where(m, moved, out)
    return out, new
