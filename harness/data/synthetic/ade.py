"""ADE20K (ADEChallengeData2016) layout with a 150-class label space.

``images/{training,validation}/ADE_{train,val}_%08d.jpg`` and uint8 label PNGs under
``annotations/``: 0 = other, 1..9 = the object classes, 10..18 = the nine background
families as stuff classes, 19..150 unused (kept so the 150-class space stays valid).
``objectInfo150.txt`` and ``sceneCategories.txt`` are written as in the real release
(scene category = background family). Both splits follow the training distribution.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.data import layout
from harness.data.layout import SYNTHETIC_CLASSES

from .backgrounds import FAMILIES
from .common import save_jpeg, save_png, stream, write_lines
from .plan import Scene, render_scene, sample_scene
from .sizes import Sizes

NUM_CLASSES = 150
CLASS_NAMES = tuple(SYNTHETIC_CLASSES) + FAMILIES + tuple(f"unused{i}" for i in range(len(SYNTHETIC_CLASSES) + len(FAMILIES) + 1, NUM_CLASSES + 1))


def label_map(scene: Scene) -> np.ndarray:
    """uint8 (H, W): background family stuff label everywhere, objects painted on top."""
    lab = np.full(scene.image.shape[:2], 1 + len(SYNTHETIC_CLASSES) + FAMILIES.index(scene.spec.family), np.uint8)
    for inst in scene.instances:
        lab[inst.mask] = 1 + SYNTHETIC_CLASSES.index(inst.category)
    return lab


def write_ade(root: Path, seed: int, sz: Sizes, bias: float) -> dict[str, int]:
    base = root / layout.ADE20K
    pixels = np.zeros(NUM_CLASSES + 1, np.int64)
    present = {"training": np.zeros(NUM_CLASSES + 1, np.int64), "validation": np.zeros(NUM_CLASSES + 1, np.int64)}
    scenes_txt, counts = [], {}
    for split, short, n in (("training", "train", sz.ade[0]), ("validation", "val", sz.ade[1])):
        for i in range(n):
            rng = stream(seed, "ade", split, i)
            scene = render_scene(sample_scene(rng, sz.ade_side, sz.ade_side, sz.objects, bias, 0.0), rng)
            name = f"ADE_{short}_{i + 1:08d}"
            lab = label_map(scene)
            save_jpeg(scene.image, base / "images" / split / f"{name}.jpg")
            save_png(lab, base / "annotations" / split / f"{name}.png")
            hist = np.bincount(lab.ravel(), minlength=NUM_CLASSES + 1)
            present[split] += hist > 0
            if split == "training":
                pixels += hist
            scenes_txt.append(f"{name} {scene.spec.family}")
        counts[f"ade/{split} images"] = n
    ratio = pixels / max(1, pixels.sum())
    rows = ["Idx\tRatio\tTrain\tVal\tName"] + [
        f"{k}\t{ratio[k]:.4f}\t{present['training'][k]}\t{present['validation'][k]}\t{CLASS_NAMES[k - 1]}"
        for k in range(1, NUM_CLASSES + 1)]
    write_lines(rows, base / "objectInfo150.txt")
    write_lines(scenes_txt, base / "sceneCategories.txt")
    return counts
