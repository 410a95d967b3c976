"""The image rank key of OpenImage-MINI: ``splitmix64(ImageID as uint64 ^ splitmix64(seed))``.

A bijection on uint64, so the rank alone identifies an image (:func:`unrank_key` inverts
it); computed with numpy, or as a polars expression inside the streaming CSV pass.
"""
from __future__ import annotations

from typing import Any

import numpy as np

GAMMA, MUL1, MUL2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MUL1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MUL2)
        return z ^ (z >> np.uint64(31))


def seed_mix(seed: int) -> int:
    return int(splitmix64(np.array([seed], dtype=np.uint64))[0])


def rank_key(images: np.ndarray, seed: int) -> np.ndarray:
    return splitmix64(images ^ np.uint64(seed_mix(seed)))


def unrank_key(keys: np.ndarray, seed: int) -> np.ndarray:
    """The ImageIDs (uint64) whose :func:`rank_key` is ``keys``: each splitmix64 step inverted."""
    u = np.uint64
    with np.errstate(over="ignore"):
        z = keys ^ (keys >> u(31)) ^ (keys >> u(62))
        z = z * u(pow(MUL2, -1, 1 << 64))
        z = z ^ (z >> u(27)) ^ (z >> u(54))
        z = z * u(pow(MUL1, -1, 1 << 64))
        z = z ^ (z >> u(30)) ^ (z >> u(60))
        return (z - u(GAMMA)) ^ u(seed_mix(seed))


def rank_key_expr(images: Any, seed: int) -> Any:
    """:func:`rank_key` as a polars expression on a UInt64 expression (polars uint64
    arithmetic wraps; ``// 2**k`` is ``>> k``)."""
    import polars as pl

    def c(v: int) -> Any:
        return pl.lit(v, dtype=pl.UInt64)

    z = (images ^ c(seed_mix(seed))) + c(GAMMA)
    z = (z ^ (z // c(1 << 30))) * c(MUL1)
    z = (z ^ (z // c(1 << 27))) * c(MUL2)
    return z ^ (z // c(1 << 31))
