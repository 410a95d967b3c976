"""Box geometry for ORL: IoU, proposal filtering and the intra-RoI jitter.

Boxes are ``(x, y, w, h)`` in absolute pixels of the original image (integers), the
format OpenCV's selective search returns.
"""
from __future__ import annotations

import math
import random

import numpy as np


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``(x, y, w, h)`` box with each row of ``boxes`` (shape ``(n, 4)``)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x, y, w, h = (float(v) for v in box)
    ix = np.minimum(boxes[:, 0] + boxes[:, 2], x + w) - np.maximum(boxes[:, 0], x)
    iy = np.minimum(boxes[:, 1] + boxes[:, 3], y + h) - np.maximum(boxes[:, 1], y)
    inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    union = boxes[:, 2] * boxes[:, 3] + w * h - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def iou_pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``(len(a), len(b))`` of two sets of ``(x, y, w, h)`` boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = (np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
          - np.maximum(a[:, None, 0], b[None, :, 0]))
    iy = (np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
          - np.maximum(a[:, None, 1], b[None, :, 1]))
    inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def filter_proposals(boxes: np.ndarray, image_size: tuple[int, int], *, min_size: int | None,
                     max_aspect: float | None, iou_thr: float | None, top_n: int | None) -> np.ndarray:
    """ORL's proposal filter, in the proposals' own (ranked) order.

    Drops boxes with a side below ``min_size`` or an aspect ratio above ``max_aspect``,
    then greedily drops every box whose IoU with an already kept box exceeds ``iou_thr``,
    and keeps the first ``top_n``. Never returns an empty set: when nothing survives, the
    first raw proposal is kept, and an image without any proposal gets the whole image
    (``image_size`` is ``(width, height)``). Returns int32 ``(k, 4)``.
    """
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    if len(boxes) == 0:
        width, height = image_size
        return np.array([[0, 0, width, height]], dtype=np.int32)
    w, h = boxes[:, 2].astype(np.float64), boxes[:, 3].astype(np.float64)
    ok = (w > 0) & (h > 0)
    if min_size:
        ok &= (w >= min_size) & (h >= min_size)
    if max_aspect:
        ok &= (w <= max_aspect * h) & (h <= max_aspect * w)
    candidates = boxes[ok]
    kept: list[int] = []
    limit = top_n if top_n else len(candidates)
    for i in range(len(candidates)):
        if len(kept) >= limit:
            break
        if iou_thr is not None and kept and iou_one_to_many(candidates[i], candidates[kept]).max() > iou_thr:
            continue
        kept.append(i)
    out = candidates[kept] if kept else boxes[:1]
    return out.astype(np.int32)


def jitter_box(box: tuple[int, int, int, int] | np.ndarray, image_size: tuple[int, int], rng: random.Random, *,
               shift: tuple[float, float] = (-0.5, 0.5), scale: tuple[float, float] = (0.5, 2.0),
               ratio: tuple[float, float] = (0.5, 2.0), iou_thr: float | None = 0.5,
               attempts: int = 200) -> tuple[int, int, int, int]:
    """A randomly shifted / rescaled / reshaped copy of ``box`` inside the image.

    The centre moves by ``shift`` times the box width/height, the area is multiplied by a
    factor in ``scale`` and the aspect ratio is drawn log-uniformly from ``ratio``. A
    candidate is accepted when it lies inside the image and its IoU with ``box`` is
    strictly above ``iou_thr``; after ``attempts`` rejections the box itself is returned.
    """
    x, y, w, h = (float(v) for v in box)
    width, height = image_size
    cx, cy, area = x + 0.5 * w, y + 0.5 * h, w * h
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(attempts):
        new_area = rng.uniform(*scale) * area
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        nw = int(round(math.sqrt(new_area * aspect)))
        nh = int(round(math.sqrt(new_area / aspect)))
        ncx = cx + rng.uniform(*shift) * w
        ncy = cy + rng.uniform(*shift) * h
        nx, ny = int(round(ncx - 0.5 * nw)), int(round(ncy - 0.5 * nh))
        if nw < 1 or nh < 1 or nx < 0 or ny < 0 or nx + nw > width or ny + nh > height:
            continue
        if iou_thr is None or iou_one_to_many((x, y, w, h), np.array([[nx, ny, nw, nh]]))[0] > iou_thr:
            return nx, ny, nw, nh
    return int(x), int(y), int(w), int(h)
