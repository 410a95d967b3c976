"""Small multi-object scenes with known boxes and classes for the ORL tests.

Three classes with distinct colour and shape (red disc, green square, blue bar) on a
noisy grey background; 2-3 objects per image. Written as ``coco/train2017/*.png`` under
a data root, plus the ground truth returned in memory.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from harness_methods.orl.artifacts import Correspondence

CLASSES = ("disc", "square", "bar")
_COLOURS = ((220, 40, 40), (40, 200, 60), (40, 70, 230))


def _paint(img: np.ndarray, cls: int, x: int, y: int, s: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    colour = np.array(_COLOURS[cls]) + rng.integers(-20, 21, 3)
    yy, xx = np.mgrid[0:s, 0:s]
    if cls == 0:
        mask = (xx - s / 2 + 0.5) ** 2 + (yy - s / 2 + 0.5) ** 2 <= (s / 2) ** 2
        box = (x, y, s, s)
    elif cls == 1:
        mask = np.ones((s, s), bool)
        box = (x, y, s, s)
    else:
        mask = np.zeros((s, s), bool)
        mask[:, s // 3: 2 * s // 3 + 1] = True
        box = (x + s // 3, y, 2 * s // 3 + 1 - s // 3, s)
    region = img[y:y + s, x:x + s]
    region[mask] = np.clip(colour, 0, 255)
    return box


def make_scenes(root: Path, n: int = 24, side: int = 96, seed: int = 0) -> list[list[tuple[tuple[int, ...], int]]]:
    """Write ``n`` scenes; returns per image the list of ``((x, y, w, h), class)``."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "coco" / "train2017"
    folder.mkdir(parents=True, exist_ok=True)
    truth = []
    for i in range(n):
        img = np.clip(rng.normal(128, 12, (side, side, 3)), 0, 255).astype(np.uint8)
        objects = []
        cells = rng.permutation(4)[: int(rng.integers(2, 4))]
        for cell in cells:
            s = int(rng.integers(side // 4, side // 2 - 4))
            cx, cy = (cell % 2) * side // 2, (cell // 2) * side // 2
            x = cx + int(rng.integers(0, side // 2 - s + 1))
            y = cy + int(rng.integers(0, side // 2 - s + 1))
            cls = int(rng.integers(len(CLASSES)))
            objects.append((_paint(img, cls, x, y, s, rng), cls))
        Image.fromarray(img).save(folder / f"{i:012d}.png")
        truth.append(objects)
    return truth


def hand_correspondence(truth, n: int, side: int) -> Correspondence:
    """Ground-truth boxes as proposals, neighbours = next images, pairs = all box pairs."""
    k = 2
    rois = [np.array([b for b, _ in t], dtype=np.int32) for t in truth]
    neighbors = np.array([[(i + 1 + r) % n for r in range(k)] for i in range(n)], dtype=np.int32)
    q, kb, offsets = [], [], [0]
    for i in range(n):
        for r in range(k):
            j = neighbors[i, r]
            pairs = [(a, b) for a in rois[i] for b in rois[j]]
            q += [a for a, _ in pairs]
            kb += [b for _, b in pairs]
            offsets.append(offsets[-1] + len(pairs))
    return Correspondence(names=[f"coco/train2017/{i:012d}.png" for i in range(n)], neighbors=neighbors,
                          similarity=np.ones((n, k), np.float32), roi_boxes=np.concatenate(rois),
                          roi_offsets=np.concatenate([[0], np.cumsum([len(r) for r in rois])]),
                          sizes=np.full((n, 2), side, np.int32), pair_offsets=np.array(offsets),
                          query_box=np.array(q, np.int32), key_box=np.array(kb, np.int32),
                          score=np.ones(len(q), np.float32), params={}, summary={})
