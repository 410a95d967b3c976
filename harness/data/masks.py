"""Turn the foreground-mask files of the localization datasets into boolean maps.

Formats (the ``mask_format`` of a ``MaskSet``):
- ``soft_png``: CUB-200-2011 ``segmentations/*.png``, grey levels 0..255 averaged over
  annotators; foreground where value / 255 > 0.5 (as ReDO and ContraCAM binarise it).
- ``flowers_segmim``: Flowers-102 ``segmim/segmim_*.jpg``, the image with the background
  painted blue; background where R == 0 or G == 0 or B == 254 (the ReDO/ContraCAM rule).
- ``npy``: Backgrounds Challenge ``fg_mask/*.npy``; foreground where the array is non-zero
  (any channel for a 3-D array).
- ``pets_trimap``: Oxford-IIIT Pets trimaps, 1 = pet, 2 = background, 3 = border; the border
  belongs to the pet, so foreground is every value except 2.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from harness.data.fileio import MalformedDataError, require_file

MASK_FORMATS = ("soft_png", "flowers_segmim", "npy", "pets_trimap")


def load_foreground_mask(path: Path, mask_format: str) -> np.ndarray:
    """Boolean (H, W) foreground map of the mask file ``path`` in format ``mask_format``."""
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"unknown mask format {mask_format!r}; known: {MASK_FORMATS}")
    require_file(path, f"a {mask_format} foreground mask")
    try:
        if mask_format == "npy":
            arr = np.load(path, allow_pickle=False)
            if arr.ndim == 3:
                arr = arr.any(axis=-1) if arr.shape[-1] in (1, 3, 4) else arr.any(axis=0)
            if arr.ndim != 2:
                raise MalformedDataError(path, f"mask array has shape {arr.shape}; expected (H, W) or (H, W, C)")
            return arr != 0
        with Image.open(path) as im:
            if mask_format == "soft_png":
                return np.array(im.convert("L")) > 127
            if mask_format == "flowers_segmim":
                rgb = np.array(im.convert("RGB"))
                background = (rgb[..., 0] == 0) | (rgb[..., 1] == 0) | (rgb[..., 2] == 254)
                return ~background
            trimap = np.array(im)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise MalformedDataError(path, f"mask does not decode ({exc}); expected {mask_format}") from exc
    if trimap.ndim != 2 or not np.isin(trimap, (1, 2, 3)).all():
        raise MalformedDataError(path, f"trimap values {np.unique(trimap)[:10].tolist()}; expected only 1, 2, 3")
    return trimap != 2
