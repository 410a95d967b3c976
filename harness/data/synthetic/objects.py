"""The nine object classes: one distinct silhouette and one distinct surface pattern each.

An instance's colours vary (:func:`instance_colour`): any hue for the man-made classes,
the class's own hue for the natural ones, saturation and value for all.

``draw_silhouette`` gives a class's binary shape on a canvas, ``class_texture`` its own
surface pattern, ``style_texture`` the class-agnostic patterns used for shifted test sets
(new colours and textures on the same shapes). Shapes are drawn with PIL from scalar
geometry, textures come from :mod:`.textures`.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from harness.data.layout import SYNTHETIC_CLASSES

from . import textures as tx

# Class-agnostic surface styles for distribution-shifted sets ("class" = the class's own).
STYLES = ("flat", "stripes", "checker", "dots", "noise")
# Classes whose real objects come in any colour: their instances take any hue, so colour
# alone does not name them; the natural classes keep their colours (a banana is yellow).
MANMADE = ("backpack", "kite", "toaster", "vase")


def _canvas(w: int, h: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    im = Image.new("L", (w, h), 0)
    return im, ImageDraw.Draw(im)


def _box(w: int, h: int, x0: float, y0: float, x1: float, y1: float) -> list[float]:
    return [x0 * w, y0 * h, max(x0 * w, x1 * w - 1), max(y0 * h, y1 * h - 1)]


def _poly(w: int, h: int, pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(x * w, y * h) for x, y in pts]


def _backpack(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    im, d = _canvas(w, h)
    d.rounded_rectangle(_box(w, h, 0.16, 0.24, 0.84, 0.98), radius=0.16 * min(w, h), fill=255)
    lw = max(1, round(0.08 * min(w, h)))
    d.arc(_box(w, h, 0.32, 0.03, 0.68, 0.42), 180, 360, fill=255, width=lw)
    return np.asarray(im) > 0


def _banana(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    a, da = _canvas(w, h)
    da.ellipse([0.02 * w, -0.45 * h, 0.98 * w, 0.92 * h], fill=255)
    b, db = _canvas(w, h)
    lift = rng.uniform(0.62, 0.7)
    db.ellipse([-0.02 * w, -0.7 * h, 1.02 * w, lift * h], fill=255)
    return (np.asarray(a) > 0) & ~(np.asarray(b) > 0)


def _broccoli(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    im, d = _canvas(w, h)
    d.polygon(_poly(w, h, [(0.42, 0.5), (0.58, 0.5), (0.64, 0.97), (0.36, 0.97)]), fill=255)
    for cx, cy in ((0.5, 0.3), (0.3, 0.4), (0.7, 0.4), (0.34, 0.2), (0.66, 0.2), (0.5, 0.5), (0.5, 0.14)):
        r = rng.uniform(0.13, 0.18)
        d.ellipse(_box(w, h, cx - r, cy - r, cx + r, cy + r), fill=255)
    return np.asarray(im) > 0


def _kite(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    im, d = _canvas(w, h)
    d.polygon(_poly(w, h, [(0.5, 0.02), (0.86, 0.36), (0.5, 0.8), (0.14, 0.36)]), fill=255)
    lw = max(1, round(0.035 * min(w, h)))
    d.line(_poly(w, h, [(0.5, 0.8), (0.44, 0.88), (0.56, 0.99)]), fill=255, width=lw)
    for y in (0.87, 0.95):
        d.polygon(_poly(w, h, [(0.42, y - 0.03), (0.58, y + 0.03), (0.58, y - 0.03), (0.42, y + 0.03)]), fill=255)
    return np.asarray(im) > 0


def _orange(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    im, d = _canvas(w, h)
    d.ellipse(_box(w, h, 0.05, 0.1, 0.95, 0.99), fill=255)
    d.ellipse(_box(w, h, 0.5, 0.01, 0.7, 0.14), fill=255)
    return np.asarray(im) > 0


def _pizza(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    im, d = _canvas(w, h)
    r = 0.95
    d.pieslice([(0.5 - r) * w, (0.03 - r) * h, (0.5 + r) * w, (0.03 + r) * h], 62, 118, fill=255)
    return np.asarray(im) > 0


def _toaster(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    im, d = _canvas(w, h)
    d.rounded_rectangle(_box(w, h, 0.04, 0.28, 0.96, 0.92), radius=0.1 * min(w, h), fill=255)
    for x0 in (0.22, 0.56):
        d.rectangle(_box(w, h, x0, 0.34, x0 + 0.22, 0.42), fill=0)
    for x0 in (0.1, 0.8):
        d.rectangle(_box(w, h, x0, 0.9, x0 + 0.1, 0.98), fill=255)
    return np.asarray(im) > 0


def _vase(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    im, d = _canvas(w, h)
    belly = rng.uniform(0.3, 0.42)
    profile = [(0.02, 0.16), (0.07, 0.11), (0.25, 0.09), (0.45, belly * 0.85), (0.65, belly), (0.85, belly * 0.7), (0.98, 0.17)]
    left = [(0.5 - hw, y) for y, hw in profile]
    right = [(0.5 + hw, y) for y, hw in reversed(profile)]
    d.polygon(_poly(w, h, left + right), fill=255)
    return np.asarray(im) > 0


def _zebra(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    im, d = _canvas(w, h)
    d.ellipse(_box(w, h, 0.14, 0.3, 0.8, 0.64), fill=255)
    for x0 in (0.2, 0.32, 0.6, 0.7):
        d.rectangle(_box(w, h, x0, 0.52, x0 + 0.07, 0.97), fill=255)
    d.polygon(_poly(w, h, [(0.66, 0.42), (0.74, 0.3), (0.84, 0.1), (0.93, 0.16), (0.8, 0.5)]), fill=255)
    d.ellipse(_box(w, h, 0.8, 0.04, 0.99, 0.24), fill=255)
    lw = max(1, round(0.03 * min(w, h)))
    d.line(_poly(w, h, [(0.16, 0.42), (0.06, 0.66)]), fill=255, width=lw)
    return np.asarray(im) > 0


_SHAPES = {
    "backpack": _backpack, "banana": _banana, "broccoli": _broccoli, "kite": _kite, "orange": _orange,
    "pizza": _pizza, "toaster": _toaster, "vase": _vase, "zebra": _zebra,
}


def draw_silhouette(category: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean (h, w) silhouette of ``category`` filling a w x h canvas."""
    if category not in _SHAPES:
        raise ValueError(f"unknown synthetic class {category!r}; expected one of {SYNTHETIC_CLASSES}")
    return _SHAPES[category](w, h, rng)


def _period(w: int, h: int, frac: float, minimum: float = 2.0) -> float:
    return max(minimum, frac * min(w, h))


def class_texture(category: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """The class's own surface (float32 (h, w, 3)), in canvas coordinates."""
    j = lambda c, a=14: tx.jitter_color(rng, c, a)  # noqa: E731
    ys, xs = tx.grid(h, w)
    fx, fy = xs / np.float32(w), ys / np.float32(h)
    if category == "backpack":
        base = j((45, 70, 150))
        img = tx.mix(tx.solid(h, w, base), (25, 40, 95), tx.checker(h, w, 2.0).astype(np.float32) * 0.35)
        pocket = (fx > 0.3) & (fx < 0.7) & (fy > 0.58) & (fy < 0.88)
        img[pocket] *= 0.7
        straps = ((np.abs(fx - 0.3) < 0.035) | (np.abs(fx - 0.7) < 0.035)) & (fy < 0.6)
        return tx.paint(img, straps, j((20, 25, 40)))
    if category == "banana":
        img = tx.mix(tx.solid(h, w, j((238, 208, 62))), (205, 170, 35), tx.value_noise(h, w, rng, 4.0))
        img = tx.paint(img, tx.dots(h, w, rng, _period(w, h, 0.14, 3), _period(w, h, 0.025, 0.6)), j((120, 80, 30)))
        return tx.paint(img, (fx < 0.1) | (fx > 0.9), j((90, 60, 25)))
    if category == "broccoli":
        img = tx.mix(tx.solid(h, w, j((38, 110, 42))), (20, 70, 25), tx.value_noise(h, w, rng, 3.0))
        img = tx.paint(img, tx.dots(h, w, rng, _period(w, h, 0.08, 2.5), _period(w, h, 0.025, 0.7)), j((95, 160, 70)))
        return tx.paint(img, (fy > 0.6) & (np.abs(fx - 0.5) < 0.16), j((160, 195, 100)))
    if category == "kite":
        c1, c2 = j((225, 35, 40)), j((250, 215, 40))
        quad = (fx < 0.5) == (fy < 0.36)
        img = tx.mix(tx.solid(h, w, c1), c2, quad.astype(np.float32))
        spars = (np.abs(fx - 0.5) < 0.02) | (np.abs(fy - 0.36) < 0.02)
        img = tx.paint(img, spars, (40, 30, 30))
        return tx.paint(img, fy > 0.8, j((60, 60, 200)))
    if category == "orange":
        img = tx.mix(tx.solid(h, w, j((248, 145, 25))), (205, 95, 10), tx.radial(h, w, w / 2, h * 0.55))
        img = tx.paint(img, tx.dots(h, w, rng, _period(w, h, 0.07, 2.5), _period(w, h, 0.018, 0.5)), j((255, 175, 70)))
        return tx.paint(img, fy < 0.14, j((60, 140, 40)))
    if category == "pizza":
        dist2 = (fx - 0.5) ** 2 + (fy - 0.03) ** 2
        img = tx.mix(tx.solid(h, w, j((250, 212, 100))), (235, 180, 60), tx.value_noise(h, w, rng, 5.0))
        img = tx.paint(img, tx.dots(h, w, rng, _period(w, h, 0.22, 5), _period(w, h, 0.06, 1.2)), j((180, 40, 30)))
        return tx.paint(img, dist2 > 0.8 ** 2, j((190, 125, 55)))
    if category == "toaster":
        img = tx.mix(tx.solid(h, w, j((225, 228, 232), 8)), (140, 145, 150), tx.triangle_wave(h, w, _period(w, h, 0.35, 4), 90.0))
        lever = (fx > 0.82) & (fx < 0.9) & (fy > 0.5) & (fy < 0.6)
        img = tx.paint(img, lever, (30, 30, 30))
        return tx.paint(img, fy > 0.88, (25, 25, 25))
    if category == "vase":
        img = tx.solid(h, w, j((55, 85, 185)))
        bands = tx.stripes(h, w, _period(w, h, 0.16, 3), 90.0, duty=0.35)
        return tx.paint(img, bands, j((236, 236, 242), 6))
    if category == "zebra":
        img = tx.solid(h, w, j((242, 242, 238), 6))
        stripes = tx.stripes(h, w, _period(w, h, 0.1, 2.4), rng.uniform(-12, 12), duty=0.45)
        img = tx.paint(img, stripes, (22, 22, 22))
        return tx.paint(img, (fx > 0.93) & (fy > 0.12) & (fy < 0.22), (15, 15, 15))
    raise ValueError(f"unknown synthetic class {category!r}; expected one of {SYNTHETIC_CLASSES}")


def style_texture(style: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A class-agnostic surface in random colours: one of :data:`STYLES`."""
    c1 = tuple(float(v) for v in rng.uniform(0, 255, 3))
    c2 = tuple(float(v) for v in rng.uniform(0, 255, 3))
    if style == "flat":
        return tx.solid(h, w, c1)
    if style == "stripes":
        return tx.mix(tx.solid(h, w, c1), c2, tx.stripes(h, w, _period(w, h, 0.18, 3), rng.uniform(0, 180)).astype(np.float32))
    if style == "checker":
        return tx.mix(tx.solid(h, w, c1), c2, tx.checker(h, w, _period(w, h, 0.15, 2)).astype(np.float32))
    if style == "dots":
        return tx.paint(tx.solid(h, w, c1), tx.dots(h, w, rng, _period(w, h, 0.15, 3), _period(w, h, 0.05, 1)), c2)
    if style == "noise":
        return tx.mix(tx.solid(h, w, c1), c2, tx.value_noise(h, w, rng, _period(w, h, 0.2, 2)))
    raise ValueError(f"unknown texture style {style!r}; expected 'class', a class name or one of {STYLES}")


def instance_colour(category: str, rng: np.random.Generator) -> tuple[float, float, float]:
    """(hue turns, saturation, value) of one object instance: man-made classes come in any
    hue, natural ones keep theirs up to a small shift; all vary in saturation and value."""
    if category in MANMADE:
        return float(rng.uniform(-0.5, 0.5)), float(rng.uniform(0.6, 1.25)), float(rng.uniform(0.8, 1.15))
    return float(rng.uniform(-0.03, 0.03)), float(rng.uniform(0.8, 1.2)), float(rng.uniform(0.85, 1.15))


def surface(category: str, texture: str | None, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """The texture for an object: its own (None/'class', in the instance's colours),
    another class's, or a style."""
    if texture in (None, "class"):
        return tx.recolour(class_texture(category, w, h, rng), *instance_colour(category, rng))
    if texture in _SHAPES:
        return class_texture(texture, w, h, rng)
    return style_texture(texture, w, h, rng)
