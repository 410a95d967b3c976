"""Nine background families, each a distinct colour and texture pattern.

Family ``i`` is the preferred background of object class ``SYNTHETIC_CLASSES[i]`` in
biased training splits (see :func:`preferred_family`). Each call varies colours, scale
and phase, so two backgrounds of one family differ in detail but not in kind.
"""
from __future__ import annotations

import numpy as np

from harness.data.layout import SYNTHETIC_CLASSES

from . import textures as tx

FAMILIES = ("carpet", "wood", "grass", "sky", "sand", "brick", "tile", "wallpaper", "savanna")


def preferred_family(category: str) -> str:
    """The background family a class co-occurs with in biased splits."""
    return FAMILIES[SYNTHETIC_CLASSES.index(category)]


def _carpet(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = tx.mix(tx.solid(h, w, tx.jitter_color(rng, (112, 58, 128), 14)), (70, 30, 85), tx.value_noise(h, w, rng, 5.0))
    return tx.paint(img, tx.dots(h, w, rng, rng.uniform(7, 11), 1.2), tx.jitter_color(rng, (175, 120, 185), 12))


def _wood(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    grain = tx.triangle_wave(h, w, rng.uniform(6, 12), rng.uniform(-6, 6), rng.random())
    img = tx.mix(tx.solid(h, w, tx.jitter_color(rng, (160, 100, 52), 14)), (105, 62, 28), grain * 0.8)
    return tx.mix(img, (90, 50, 20), tx.value_noise(h, w, rng, 12.0) * 0.35)


def _grass(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = tx.mix(tx.solid(h, w, tx.jitter_color(rng, (72, 150, 52), 14)), (35, 95, 25), tx.value_noise(h, w, rng, 2.5))
    blades = tx.stripes(h, w, rng.uniform(3, 5), 180 + rng.uniform(-15, 15), duty=0.25) & (tx.value_noise(h, w, rng, 3.0) > 0.55)
    return tx.paint(img, blades, tx.jitter_color(rng, (120, 190, 80), 12))


def _sky(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    ys, _ = tx.grid(h, w)
    img = tx.mix(tx.solid(h, w, tx.jitter_color(rng, (85, 145, 228), 12)), (175, 212, 246), ys / np.float32(h))
    clouds = np.clip((tx.value_noise(h, w, rng, rng.uniform(10, 18)) - 0.55) * 3.0, 0.0, 1.0)
    return tx.mix(img, (248, 248, 252), clouds)


def _sand(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = tx.mix(tx.solid(h, w, tx.jitter_color(rng, (218, 192, 140), 10)), (190, 160, 110), tx.value_noise(h, w, rng, 1.5))
    ripples = tx.triangle_wave(h, w, rng.uniform(8, 14), 90 + rng.uniform(-20, 20), rng.random())
    return tx.mix(img, (235, 215, 170), ripples * 0.3)


def _brick(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    ys, xs = tx.grid(h, w)
    bh = np.float32(rng.uniform(7, 11))
    row = np.floor(ys / bh)
    shift = (row % 2) * bh
    col = np.floor((xs + shift) / (2 * bh))
    n_rows, n_cols = int(h / float(bh)) + 2, int(w / (2 * float(bh))) + 3
    shade = rng.uniform(-22, 22, (n_rows, n_cols)).astype(np.float32)
    base = np.asarray(tx.jitter_color(rng, (165, 62, 45), 12), np.float32)
    img = base[None, None, :] + shade[row.astype(np.int64), col.astype(np.int64)][..., None]
    mortar = ((ys - row * bh) < 1.5) | (((xs + shift) - col * 2 * bh) < 1.5)
    return tx.paint(img, mortar, tx.jitter_color(rng, (195, 190, 178), 8))


def _tile(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    period = rng.uniform(10, 16)
    phase = (rng.random(), rng.random())
    img = tx.mix(tx.solid(h, w, tx.jitter_color(rng, (236, 236, 234), 6)), tx.jitter_color(rng, (165, 172, 180), 8),
                 tx.checker(h, w, period, phase).astype(np.float32))
    ys, xs = tx.grid(h, w)
    gx = xs / np.float32(period) + np.float32(phase[0])
    gy = ys / np.float32(period) + np.float32(phase[1])
    grout = ((gx - np.floor(gx)) * period < 1.0) | ((gy - np.floor(gy)) * period < 1.0)
    return tx.paint(img, grout, (120, 120, 125))


def _wallpaper(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = tx.solid(h, w, tx.jitter_color(rng, (228, 165, 190), 10))
    img = tx.paint(img, tx.stripes(h, w, rng.uniform(8, 14), 0.0, duty=0.3, phase=rng.random()), tx.jitter_color(rng, (247, 218, 228), 6))
    return tx.paint(img, tx.dots(h, w, rng, rng.uniform(9, 13), 1.0, jitter=0.05), tx.jitter_color(rng, (180, 95, 130), 10))


def _savanna(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    ys, _ = tx.grid(h, w)
    horizon = np.float32(h * rng.uniform(0.28, 0.42))
    ground = tx.mix(tx.solid(h, w, tx.jitter_color(rng, (205, 172, 72), 12)), (160, 125, 45), tx.value_noise(h, w, rng, 3.0))
    strokes = tx.stripes(h, w, rng.uniform(2.5, 4), rng.uniform(-10, 10), duty=0.3) & (tx.value_noise(h, w, rng, 4.0) > 0.5)
    ground = tx.paint(ground, strokes, tx.jitter_color(rng, (140, 110, 40), 10))
    sky = tx.solid(h, w, tx.jitter_color(rng, (182, 212, 236), 10))
    return np.where((ys < horizon)[..., None], sky, ground)


_RENDER = dict(zip(FAMILIES, (_carpet, _wood, _grass, _sky, _sand, _brick, _tile, _wallpaper, _savanna)))


def render_background(family: str | int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A uint8 (height, width, 3) background of ``family`` (a name or index into FAMILIES)."""
    name = FAMILIES[family] if isinstance(family, (int, np.integer)) else family
    if name not in _RENDER:
        raise ValueError(f"unknown background family {family!r}; expected one of {FAMILIES}")
    return tx.to_uint8(_RENDER[name](height, width, rng))
