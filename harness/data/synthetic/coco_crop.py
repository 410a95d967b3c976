"""COCO-Crop of the synthetic COCO: ``coco_crop/{train,val}/<name>/<ann id>.jpg``, made by
the same builder as the ``coco_crop`` task (:mod:`harness.data.object_crops`), with the
synthetic benchmark's shorter side."""
from __future__ import annotations

from pathlib import Path

from harness.data.object_crops import CropSpec, build_coco_split


def write_coco_crop(root: Path, side: int) -> dict[str, int]:
    counts = {}
    for split in ("train", "val"):
        out = build_coco_split(root, root, split, CropSpec(size=side))
        counts[f"coco_crop/{split} crops"] = sum(1 for _ in out.glob("*/*.jpg"))
    return counts
