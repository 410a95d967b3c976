"""Programmatic scene API: render objects and backgrounds, compose them into images.

Three functions make any synthetic image the benchmark contains:

- :func:`render_object` ``(category, size, rotation, texture, rng) -> ObjectPatch``:
  one object of a class as an RGB patch plus its boolean mask, cropped to the mask.
  ``texture`` is ``None``/``"class"`` (the class's own), another class's name (a
  shape/texture cue conflict) or a style from :data:`STYLES` (random colours).
- :func:`render_background` ``(family, height, width, rng) -> uint8 (H, W, 3)``: one of
  the nine :data:`FAMILIES`; :func:`preferred_family` gives a class's biased family.
- :func:`compose` ``(background, placements) -> Composite``: pastes patches at given
  centres, in order (later ones occlude earlier ones), and returns the image, one
  visible-region mask per placement, and their boxes.

Every function is deterministic given its ``rng`` (a ``numpy.random.Generator`` or an
int seed).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .backgrounds import FAMILIES, preferred_family, render_background
from .objects import STYLES, draw_silhouette, surface
from .textures import to_uint8

__all__ = [
    "FAMILIES", "STYLES", "ObjectPatch", "Placement", "Composite",
    "render_object", "render_background", "preferred_family", "compose", "mask_box",
]

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(0 if rng is None else rng)


@dataclass(frozen=True)
class ObjectPatch:
    """An object cut-out: ``rgb`` uint8 (h, w, 3) and ``mask`` bool (h, w), same size."""

    category: str
    rgb: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class Placement:
    """Where to paste a patch: its centre ``(cx, cy)`` in image pixels (may be off-image)."""

    patch: ObjectPatch
    cx: float
    cy: float


@dataclass
class Composite:
    """A composed image with per-placement visible masks and boxes (None when hidden)."""

    image: np.ndarray
    instance_map: np.ndarray  # int16 (H, W): 0 = background, i + 1 = placement i
    masks: list[np.ndarray] = field(default_factory=list)
    boxes: list[Box | None] = field(default_factory=list)

    def area(self, i: int) -> int:
        return int(self.masks[i].sum())


def mask_box(mask: np.ndarray) -> Box | None:
    """Tight box of a boolean mask, or None when the mask is empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def render_object(category: str, size: int, rotation: float = 0.0, texture: str | None = None,
                  rng: np.random.Generator | int | None = None, aspect: float = 1.0) -> ObjectPatch:
    """One object of ``category`` on a ``size``-px canvas (before rotation).

    ``rotation`` is in degrees, counter-clockwise; ``aspect`` > 1 widens the canvas.
    """
    g = _rng(rng)
    w = max(4, int(round(size * aspect ** 0.5)))
    h = max(4, int(round(size / aspect ** 0.5)))
    mask = draw_silhouette(category, w, h, g)
    rgb = to_uint8(surface(category, texture, w, h, g))
    if mask.any():
        rgb[~mask] = rgb[mask].mean(axis=0).astype(np.uint8)  # no dark fringe when resampled
    if rotation % 360:
        rgb = np.asarray(Image.fromarray(rgb).rotate(rotation, resample=Image.BILINEAR, expand=True))
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).rotate(rotation, resample=Image.NEAREST, expand=True)) > 127
    box = mask_box(mask)
    if box is None:
        raise ValueError(f"object {category!r} of size {size} rendered empty")
    x0, y0, x1, y1 = box
    return ObjectPatch(category, np.ascontiguousarray(rgb[y0:y1, x0:x1]), np.ascontiguousarray(mask[y0:y1, x0:x1]))


def compose(background: np.ndarray, placements: list[Placement]) -> Composite:
    """Paste ``placements`` in order onto a copy of ``background`` (uint8 (H, W, 3))."""
    image = np.array(background, dtype=np.uint8, copy=True)
    H, W = image.shape[:2]
    inst = np.zeros((H, W), np.int16)
    for i, pl in enumerate(placements):
        ph, pw = pl.patch.mask.shape
        x0, y0 = int(round(pl.cx - pw / 2)), int(round(pl.cy - ph / 2))
        ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(W, x0 + pw), min(H, y0 + ph)
        if ix0 >= ix1 or iy0 >= iy1:
            continue
        m = pl.patch.mask[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
        region = image[iy0:iy1, ix0:ix1]
        region[m] = pl.patch.rgb[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0][m]
        inst[iy0:iy1, ix0:ix1][m] = i + 1
    masks = [inst == i + 1 for i in range(len(placements))]
    return Composite(image, inst, masks, [mask_box(m) for m in masks])
