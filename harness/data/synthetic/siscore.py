"""SI-Score-style factor sets: ``siscore/<factor>/<class>/<int id>.jpg`` + ``metadata.csv``.

Objects are pasted onto unbiased backgrounds (family uniform) while one factor moves:

- ``area``: object box area from 2% to 64% of the image, centred;
- ``rotation``: 0..315 degrees in 45-degree steps at 20% area, centred;
- ``location20_area02_min0pc``: a grid of centres over the whole image (objects may be
  cut by the border: "min 0% visible"), 20% area.

``metadata.csv`` columns: image_id, image_path, label, dataset_label (the class's index
in the real 61-class SI-Score list), imagenet_label, x_coord, y_coord (object centre,
fractions of width/height), area (object box area / image area), rotation (degrees),
background (family). The real files' exact column set is not public in the references
used here; readers should rely on the columns above.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.data import layout
from harness.data.layout import SYNTHETIC_CLASSES

from .backgrounds import FAMILIES
from .common import fmt, save_jpeg, stream, write_csv
from .scenes import Placement, compose, render_background, render_object

# (SI-Score dataset_label, ImageNet-1k id) of the nine class names, from the real lists.
SISCORE_IDS = {"backpack": (2, 414), "banana": (4, 954), "broccoli": (7, 937), "kite": (24, 21), "orange": (34, 950),
               "pizza": (39, 963), "toaster": (55, 859), "vase": (57, 883), "zebra": (59, 340)}
FACTORS = ("area", "rotation", "location20_area02_min0pc")
COLUMNS = ("image_id", "image_path", "label", "dataset_label", "imagenet_label", "x_coord", "y_coord", "area",
           "rotation", "background")


def factor_levels(factor: str, tiny: bool) -> list[tuple[float, float, float, float]]:
    """(area, rotation, x, y) settings of a factor."""
    if factor == "area":
        areas = (0.04, 0.16, 0.49) if tiny else (0.02, 0.05, 0.1, 0.2, 0.35, 0.49, 0.64)
        return [(a, 0.0, 0.5, 0.5) for a in areas]
    if factor == "rotation":
        step = 90 if tiny else 45
        return [(0.2, float(r), 0.5, 0.5) for r in range(0, 360, step)]
    pos = (0.15, 0.85) if tiny else (0.05, 0.275, 0.5, 0.725, 0.95)
    return [(0.2, 0.0, x, y) for y in pos for x in pos]


def write_siscore(root: Path, seed: int, side: int, per_level: int, tiny: bool) -> dict[str, int]:
    base = root / layout.SISCORE
    counts = {}
    for factor in FACTORS:
        rows, image_id = [], 0
        for k, category in enumerate(SYNTHETIC_CLASSES):
            levels = factor_levels(factor, tiny)
            repeats = per_level if factor != FACTORS[2] else max(1, per_level // 2)  # the grid has many levels
            for level, (area, rot, x, y) in enumerate(levels):
                for r in range(repeats):
                    rng = stream(seed, "siscore", factor, k, level, r)
                    family = FAMILIES[int(rng.integers(len(FAMILIES)))]
                    bg = render_background(family, side, side, rng)
                    upright = render_object(category, 64, 0.0, None, stream(seed, "siscore-shape", factor, k, level, r))
                    # scale the canvas so the unrotated object's box covers ``area`` of the image
                    box_frac = upright.mask.shape[0] * upright.mask.shape[1] / 64.0 ** 2
                    size = max(6, int(round(side * float(np.sqrt(area / box_frac)))))
                    patch = render_object(category, size, rot, None, stream(seed, "siscore-shape", factor, k, level, r))
                    comp = compose(bg, [Placement(patch, x * side, y * side)])
                    image_id += 1
                    rel = f"{category}/{image_id}.jpg"
                    save_jpeg(comp.image, base / factor / rel)
                    ds_label, in_label = SISCORE_IDS[category]
                    rows.append([image_id, rel, category, ds_label, in_label, fmt(x, 4), fmt(y, 4), fmt(area, 4), fmt(rot, 1), family])
        write_csv(COLUMNS, rows, base / factor / "metadata.csv")
        counts[f"siscore/{factor} images"] = len(rows)
    return counts
