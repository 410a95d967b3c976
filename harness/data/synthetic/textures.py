"""Procedural colour textures, built only from exactly-rounded arithmetic.

No array transcendental functions (their SIMD implementations differ between CPUs),
so a texture is bit-identical on every machine. Every function returns a float32
``(h, w, 3)`` array in [0, 255].
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image

RGB = Sequence[float]


def grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(ys, xs)`` as float32 arrays of shape (h, w)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return ys + 0.5, xs + 0.5


def solid(h: int, w: int, color: RGB) -> np.ndarray:
    return np.broadcast_to(np.asarray(color, np.float32), (h, w, 3)).copy()


def mix(a: np.ndarray, b: np.ndarray | RGB, t: np.ndarray) -> np.ndarray:
    """Per-pixel blend ``a + (b - a) * t`` (``t`` in [0, 1], shape (h, w))."""
    b = np.asarray(b, np.float32)
    return a + (b - a) * t[..., None].astype(np.float32)


def paint(img: np.ndarray, where: np.ndarray, color: RGB) -> np.ndarray:
    img[where] = np.asarray(color, np.float32)
    return img


def jitter_color(rng: np.random.Generator, color: RGB, amount: float) -> tuple[float, float, float]:
    c = np.asarray(color, np.float64) + rng.uniform(-amount, amount, 3)
    return tuple(float(v) for v in np.clip(c, 0, 255))


def value_noise(h: int, w: int, rng: np.random.Generator, cell: float) -> np.ndarray:
    """Smooth noise in [0, 1]: a random lattice of ~``cell`` px, bilinearly upsampled by PIL."""
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    lattice = rng.random((gh, gw), dtype=np.float32)
    up = Image.fromarray(lattice).resize((w, h), Image.BILINEAR)
    return np.asarray(up, np.float32).clip(0.0, 1.0)


def stripes(h: int, w: int, period: float, angle_deg: float = 0.0, duty: float = 0.5,
            phase: float = 0.0, origin: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Boolean stripes perpendicular to direction ``angle_deg``, ``duty`` fraction True."""
    ys, xs = grid(h, w)
    c, s = np.float32(math.cos(math.radians(angle_deg))), np.float32(math.sin(math.radians(angle_deg)))
    t = ((xs - origin[0]) * c + (ys - origin[1]) * s) / np.float32(period) + np.float32(phase)
    return (t - np.floor(t)) < duty


def triangle_wave(h: int, w: int, period: float, angle_deg: float = 0.0, phase: float = 0.0) -> np.ndarray:
    """A smooth-looking periodic ramp in [0, 1] (0 at stripe centre, 1 at its edges)."""
    ys, xs = grid(h, w)
    c, s = np.float32(math.cos(math.radians(angle_deg))), np.float32(math.sin(math.radians(angle_deg)))
    t = (xs * c + ys * s) / np.float32(period) + np.float32(phase)
    return np.abs((t - np.floor(t)) * 2 - 1)


def checker(h: int, w: int, period: float, phase: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    ys, xs = grid(h, w)
    a = np.floor(xs / np.float32(period) + np.float32(phase[0]))
    b = np.floor(ys / np.float32(period) + np.float32(phase[1]))
    return ((a + b) % 2) == 1


def dots(h: int, w: int, rng: np.random.Generator, spacing: float, radius: float,
         jitter: float = 0.3) -> np.ndarray:
    """Boolean disks on a jittered lattice (one disk per ``spacing`` cell)."""
    ys, xs = grid(h, w)
    sp = np.float32(spacing)
    cy, cx = np.floor(ys / sp), np.floor(xs / sp)
    ny, nx = int(h / spacing) + 2, int(w / spacing) + 2
    off = (0.5 + rng.uniform(-jitter, jitter, (ny, nx, 2))).astype(np.float32)
    iy, ix = cy.astype(np.int64), cx.astype(np.int64)
    dy = ys - (cy + off[iy, ix, 0]) * sp
    dx = xs - (cx + off[iy, ix, 1]) * sp
    r = rng.uniform(0.7, 1.0, (ny, nx)).astype(np.float32)[iy, ix] * np.float32(radius)
    return dx * dx + dy * dy < r * r


def radial(h: int, w: int, cx: float | None = None, cy: float | None = None) -> np.ndarray:
    """Squared distance from a centre, normalised to 1 at the nearest border."""
    ys, xs = grid(h, w)
    cx = w / 2 if cx is None else cx
    cy = h / 2 if cy is None else cy
    d = ((xs - np.float32(cx)) / np.float32(w / 2)) ** 2 + ((ys - np.float32(cy)) / np.float32(h / 2)) ** 2
    return np.clip(d, 0.0, 1.0)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(img + 0.5), 0, 255).astype(np.uint8)


# RGB <-> YIQ (NTSC); hue is the angle of (I, Q), saturation its length, Y the luma.
_TO_YIQ = ((0.299, 0.587, 0.114), (0.595716, -0.274453, -0.321263), (0.211456, -0.522591, 0.311135))
_TO_RGB = ((1.0, 0.9563, 0.6210), (1.0, -0.2721, -0.6474), (1.0, -1.1070, 1.7046))


def _apply3(m: Sequence[Sequence[float]], img: np.ndarray) -> list[np.ndarray]:
    """Rows of ``m`` applied to the channels of ``img`` with element-wise arithmetic (no BLAS)."""
    c = [img[..., k] for k in range(3)]
    return [np.float32(r[0]) * c[0] + np.float32(r[1]) * c[1] + np.float32(r[2]) * c[2] for r in m]


def recolour(img: np.ndarray, hue_turns: float, saturation: float, value: float) -> np.ndarray:
    """``img`` (float32 (h, w, 3), 0-255) with its hue rotated by ``hue_turns`` of a full
    turn, chroma scaled by ``saturation`` and luma by ``value`` (YIQ space), clipped."""
    y, i, q = _apply3(_TO_YIQ, img)
    cos, sin = math.cos(2 * math.pi * hue_turns) * saturation, math.sin(2 * math.pi * hue_turns) * saturation
    i2 = np.float32(cos) * i - np.float32(sin) * q
    q2 = np.float32(sin) * i + np.float32(cos) * q
    out = np.stack(_apply3(_TO_RGB, np.stack([y * np.float32(value), i2, q2], axis=-1)), axis=-1)
    return np.clip(out, 0.0, 255.0).astype(np.float32)
