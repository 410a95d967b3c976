"""From soft CAM masks to object boxes, and the files that hold them.

Pipeline per image (all sizes relative to the mask's own resolution):

1. optional dense CRF (2 labels, gaussian sxy 3 / compat 3, bilateral sxy 80 / srgb 13 /
   compat 10, 5 mean-field iterations) through ``pydensecrf`` (PyPI ``pydensecrf2``);
2. connected components of the 8-bit support (value >= 1/255, as an 8-bit mask file
   would store it), keeping components larger than ``min_area`` (1%) of the image; the
   kept pixels keep their soft values;
   with ``binarize: official`` they become 1 (the binary support, as the official code's
   ``clean_mask`` leaves them);
3. threshold at ``threshold`` (0.5) x the mask's maximum;
4. one bounding rectangle per outer contour (OpenCV; ``contours: tree``: per contour of
   every level, holes included, as the official ``RETR_TREE``), dropping those of at
   most ``min_area`` of the image;
5. expand every box by ``margin`` (20%) of its width/height per side, clip, normalise.

Files
-----
Boxes: JSON ``{"format": "contracam-boxes", "version": 1, "box_format": "xyxy",
"normalized": true, "boxes": {"<image file name>": [[x1, y1, x2, y2], ...], ...}}``;
coordinates are fractions of the image width/height in [0, 1]; an image with no box
has an empty list (its object-aware crop is the full image). Keys are image file paths
relative to the data root, POSIX style (e.g. ``coco/train2017/000000000009.jpg``).

Masks: one 8-bit grey PNG per image, ``masks/<key with suffix .png>`` (CAM value x 255),
at the CAM resolution ``S x S`` of the image resized without keeping its aspect, so
normalised image coordinates map onto it directly.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from harness.core.atomic import atomic_open, atomic_write_json
from harness.core.errors import ConfigError, DataError

BINARIZE = ("soft", "official")
CONTOURS = ("external", "tree")
BOXES_FORMAT = "contracam-boxes"
BOXES_VERSION = 1
CRF_DEFAULTS = {"iterations": 5, "gaussian_sxy": 3, "gaussian_compat": 3,
                "bilateral_sxy": 80, "bilateral_srgb": 13, "bilateral_compat": 10}

Box = tuple[float, float, float, float]


def crf_available() -> bool:
    """Whether the dense CRF library (``pydensecrf``) imports."""
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        return False
    return True


def dense_crf(image: np.ndarray, prob: np.ndarray, iterations: int = 5, gaussian_sxy: float = 3,
              gaussian_compat: float = 3, bilateral_sxy: float = 80, bilateral_srgb: float = 13,
              bilateral_compat: float = 10) -> np.ndarray:
    """Foreground probability after a 2-label dense CRF.

    ``image``: uint8 ``(H, W, 3)`` RGB; ``prob``: float foreground probability ``(H, W)``.
    """
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as exc:
        raise ConfigError("dense CRF requested (crf: true) but pydensecrf is not installed; "
                          "`pip install pydensecrf2` or set crf: false") from exc
    h, w = prob.shape
    if image.shape != (h, w, 3) or image.dtype != np.uint8:
        raise ValueError(f"dense_crf needs a uint8 (H, W, 3) image matching the mask {prob.shape}, "
                         f"got {image.dtype} {image.shape}")
    labels = np.stack([prob, 1.0 - prob]).reshape(2, -1).astype(np.float32)
    crf = dcrf.DenseCRF2D(w, h, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(-np.log(labels + 1e-20)))
    crf.addPairwiseGaussian(sxy=gaussian_sxy, compat=gaussian_compat)
    crf.addPairwiseBilateral(sxy=bilateral_sxy, srgb=bilateral_srgb,
                             rgbim=np.ascontiguousarray(image), compat=bilateral_compat)
    q = np.asarray(crf.inference(iterations), dtype=np.float32).reshape(2, h, w)
    return q[0]


def keep_large_components(mask: np.ndarray, min_area: float = 0.01) -> np.ndarray:
    """Zero the connected components (4-connected, of the 8-bit support) whose area is
    at most ``min_area`` of the image; other pixels keep their values."""
    import cv2

    support = (np.clip(mask, 0, 1) * 255).astype(np.uint8) > 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(support.astype(np.uint8), connectivity=4)
    keep = np.zeros(count, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] > min_area * mask.size
    return np.where(keep[labels], mask, 0).astype(mask.dtype)


def expand_box(box: Sequence[float], width: float, height: float, margin: float) -> Box:
    """Grow an absolute ``xyxy`` box by ``margin`` x its width/height per side, clip to
    the image and normalise by its size."""
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    return (max(0.0, x1 - bw * margin) / width, max(0.0, y1 - bh * margin) / height,
            min(width, x2 + bw * margin) / width, min(height, y2 + bh * margin) / height)


def mask_to_boxes(mask: np.ndarray, threshold: float = 0.5, min_area: float = 0.01,
                  margin: float = 0.2, contours: str = "external") -> list[Box]:
    """Normalised ``xyxy`` boxes of a (cleaned) soft mask ``(H, W)``: threshold at
    ``threshold`` x max, one box per outer contour (``contours="tree"``: per contour,
    holes included), boxes larger than ``min_area`` of the image kept, each expanded by
    ``margin``."""
    import cv2

    if contours not in CONTOURS:
        raise ValueError(f"contours must be one of {CONTOURS}, got {contours!r}")
    h, w = mask.shape
    peak = float(mask.max()) if mask.size else 0.0
    if peak <= 0:
        return []
    binary = (mask > threshold * peak).astype(np.uint8)
    mode = cv2.RETR_EXTERNAL if contours == "external" else cv2.RETR_TREE
    found, _ = cv2.findContours(binary, mode, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for contour in found:
        x, y, bw, bh = cv2.boundingRect(contour)
        if bw * bh > min_area * h * w:
            boxes.append(expand_box((x, y, x + bw, y + bh), w, h, margin))
    return sorted(boxes)


def boxes_from_mask(mask: np.ndarray, image: np.ndarray | None = None, crf: bool = False,
                    threshold: float = 0.5, min_area: float = 0.01, margin: float = 0.2,
                    binarize: str = "soft", contours: str = "external") -> list[Box]:
    """The whole pipeline for one soft mask (``image`` is needed only for the CRF)."""
    if binarize not in BINARIZE:
        raise ValueError(f"binarize must be one of {BINARIZE}, got {binarize!r}")
    if crf:
        if image is None:
            raise ValueError("the dense CRF needs the image")
        mask = dense_crf(image, mask, **CRF_DEFAULTS)
    cleaned = keep_large_components(mask, min_area)
    if binarize == "official":
        cleaned = (cleaned > 0).astype(np.float32)
    return mask_to_boxes(cleaned, threshold, min_area, margin, contours)


def save_boxes(path: Path, boxes: Mapping[str, Iterable[Sequence[float]]]) -> None:
    """Write the boxes file (schema in the module docstring) atomically."""
    payload = {"format": BOXES_FORMAT, "version": BOXES_VERSION, "box_format": "xyxy", "normalized": True,
               "boxes": {name: [[round(float(v), 6) for v in box] for box in items]
                         for name, items in boxes.items()}}
    atomic_write_json(path, payload, sort_keys=True)


def load_boxes(path: Path) -> dict[str, list[Box]]:
    """Read a boxes file, checking its schema."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the boxes file ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != BOXES_FORMAT or "boxes" not in payload:
        raise DataError(f"{path}: expected a JSON object with format {BOXES_FORMAT!r} and a 'boxes' mapping")
    out: dict[str, list[Box]] = {}
    for name, items in payload["boxes"].items():
        boxes = []
        for box in items:
            if len(box) != 4 or not all(0.0 <= float(v) <= 1.0 for v in box) or box[0] > box[2] or box[1] > box[3]:
                raise DataError(f"{path}: image {name!r} has a bad box {box!r} (expected normalised x1<=x2, y1<=y2)")
            boxes.append(tuple(float(v) for v in box))
        out[name] = boxes
    return out


def mask_path(mask_dir: Path, key: str) -> Path:
    """Where the mask of image ``key`` (a relative image path) is stored."""
    return Path(mask_dir) / Path(key).with_suffix(".png")


def save_mask(path: Path, mask: np.ndarray) -> None:
    """Write a soft mask ``(H, W)`` in [0, 1] as an 8-bit grey PNG (255 = 1.0)."""
    from PIL import Image

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a (H, W) mask, got shape {mask.shape}")
    with atomic_open(path, fsync=False) as fh:  # one per image; the stage's chunk markers are fsynced
        Image.fromarray(np.round(np.clip(mask, 0, 1) * 255).astype(np.uint8), mode="L").save(fh, format="PNG")


def load_mask(path: Path) -> np.ndarray:
    """Read a mask PNG as float32 ``(H, W)`` in [0, 1]."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode != "L":
                raise DataError(f"{path}: mask PNG has mode {im.mode}; expected 8-bit grey ('L')")
            return np.asarray(im, dtype=np.float32) / 255.0
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the CAM mask (expected an 8-bit grey PNG; {exc})") from exc
