"""Deterministic building blocks shared by every writer: random streams and file encoders.

Every random decision draws from a stream keyed by ``(seed, *keys)``, so one item's
content never depends on how many items came before it or on the order writers run.
Files are encoded with fixed settings (JPEG quality, PNG compression, sorted JSON keys,
no timestamps), so the same seed gives byte-identical files.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image

JPEG_QUALITY = 90
PNG_COMPRESS_LEVEL = 6


def stream(seed: int, *keys: object) -> np.random.Generator:
    """An independent PCG64 generator for ``seed`` and a tuple of keys (str/int)."""
    digest = hashlib.sha256(repr((int(seed),) + tuple(keys)).encode()).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 32, 4)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))


def hex_id(seed: int, *keys: object, length: int = 16) -> str:
    """A stable lowercase hex identifier derived from the seed and keys."""
    return hashlib.sha256(repr(("id", int(seed)) + tuple(keys)).encode()).hexdigest()[:length]


def _ensure_parent(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)


def save_jpeg(image: np.ndarray | Image.Image, path: Path, quality: int = JPEG_QUALITY) -> None:
    """Baseline JPEG, 4:2:0, no EXIF/ICC: deterministic for a given libjpeg build."""
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image))
    if im.mode != "RGB":
        im = im.convert("RGB")
    _ensure_parent(path)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality, subsampling=2, optimize=False, progressive=False)
    path.write_bytes(buf.getvalue())


def save_png(image: np.ndarray | Image.Image, path: Path, palette: Sequence[int] | None = None) -> None:
    """PNG with fixed compression (uint8 (H, W) -> 'L', (H, W, 3) -> 'RGB').

    ``palette`` (flat RGB list) turns an 'L' image into a palette ('P') image.
    """
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image))
    if palette is not None:
        im = im.copy()
        im.putpalette(list(palette))
    _ensure_parent(path)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
    path.write_bytes(buf.getvalue())


def save_bitmask_png(mask: np.ndarray, path: Path) -> None:
    """A 1-bit PNG of a boolean mask."""
    im = Image.fromarray(np.ascontiguousarray(mask.astype(np.uint8) * 255)).convert("1")
    save_png(im, path)


def write_json(obj: Any, path: Path, indent: int | None = None) -> None:
    _ensure_parent(path)
    path.write_text(json.dumps(obj, sort_keys=True, indent=indent, separators=None if indent else (",", ":")) + "\n")


def write_lines(lines: Iterable[str], path: Path) -> None:
    _ensure_parent(path)
    path.write_text("".join(f"{line}\n" for line in lines))


def write_csv(header: Sequence[str] | None, rows: Iterable[Sequence[Any]], path: Path) -> None:
    """CSV with '\\n' line ends; floats written with ``repr`` precision by the caller."""
    _ensure_parent(path)
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        if header is not None:
            w.writerow(header)
        for row in rows:
            w.writerow(row)


def fmt(x: float, digits: int = 6) -> str:
    """A float as fixed text (stable across platforms)."""
    return f"{x:.{digits}f}"
