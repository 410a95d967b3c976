"""Image file helpers shared by the readers and ``verify`` (PIL only, no torch)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from harness.data.fileio import MalformedDataError, require_file

# the per-channel normalisation every backbone here is trained and evaluated with
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def is_image_name(name: str) -> bool:
    """True for a file name with an image suffix (any case: ``.JPEG`` counts)."""
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def check_image(path: Path) -> tuple[int, int]:
    """Fully decode ``path`` and return its (width, height); ``MalformedDataError`` if it does not decode.

    ``PIL.Image.verify`` catches broken headers and checksums; the second open and ``load``
    catch truncated pixel data that ``verify`` lets through.
    """
    require_file(path, "an image file")
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()
            return im.size
    except _DECODE_ERRORS as exc:
        raise MalformedDataError(path, f"image does not decode ({exc})") from exc


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) read from the image header only."""
    require_file(path, "an image file")
    try:
        with Image.open(path) as im:
            return im.size
    except _DECODE_ERRORS as exc:
        raise MalformedDataError(path, f"not a readable image ({exc})") from exc


def load_rgb(path: Path) -> Image.Image:
    """The image at ``path`` decoded and converted to RGB."""
    require_file(path, "an image file")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except _DECODE_ERRORS as exc:
        raise MalformedDataError(path, f"image does not decode ({exc})") from exc


def load_label_map(path: Path) -> np.ndarray:
    """Raw values of a single-channel label PNG (palette PNGs give their indices), as uint8/int array."""
    require_file(path, "a label map PNG")
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "I", "I;16", "1"):
                raise MalformedDataError(path, f"label map has mode {im.mode}; expected a single-channel PNG")
            return np.array(im)
    except _DECODE_ERRORS as exc:
        raise MalformedDataError(path, f"label map does not decode ({exc})") from exc
