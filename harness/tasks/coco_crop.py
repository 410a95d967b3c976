"""COCO-Crop: build the object crops from COCO instances, then linear-probe them.

Train on the train2017 crops (``val_size`` of them, seeded, select the L2 penalty), test
on the val2017 crops; top-1 over the 80 categories. Crops are built once into
``crop_dir`` (default: ``<harness cache>/coco_crop/<annotations + crop spec hash>``) and
shared by every backbone. Config: ``crops`` {min_area, margin, size, quality},
``build_workers``, plus every linear-probe key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from harness import paths
from harness.api import Task, TaskContext, TaskResult
from harness.data import layout
from harness.data.folders import read_coco_crop
from harness.tasks import cls_common
from harness.tasks.cls_data import ProbeSplits
from harness.tasks.object_crops import CropSpec, build_coco_split, cache_root
from harness.tasks.linear_probe import probe_splits


def build_coco_crop(data_root: Path, cfg: dict[str, Any], progress: Callable[..., None] | None = None) -> Path:
    """Build (or resume) both COCO-Crop splits; returns the root holding ``coco_crop/``."""
    spec = CropSpec.from_cfg(cfg.get("crops") or {})
    anns = [Path(data_root) / layout.COCO / "annotations" / f"instances_{s}2017.json" for s in ("train", "val")]
    out = Path(cfg["crop_dir"]).expanduser() if cfg.get("crop_dir") else \
        cache_root(anns, spec, paths.cache_dir() / "coco_crop")
    workers = int(cfg.get("build_workers", 1))
    for split in ("train", "val"):
        report = (lambda done, total, s=split: progress(done, total, phase=f"crops {s}")) if progress else None
        build_coco_split(data_root, out, split, spec, workers=workers, progress=report)
    return out


def coco_crop_root(data_root: Path, cfg: dict[str, Any], progress: Callable[..., None] | None = None) -> Path:
    """``data_root`` when it already holds ``coco_crop/``, else the built crops' root."""
    if (Path(data_root) / layout.COCO_CROP / "train").is_dir():
        return Path(data_root)
    return build_coco_crop(data_root, cfg, progress)


class CocoCrop(Task):
    """Build COCO-Crop from COCO instances and linear-probe it."""

    def run(self, ctx: TaskContext) -> TaskResult:
        root = build_coco_crop(ctx.data_root, ctx.cfg, ctx.progress)
        splits = ProbeSplits("coco_crop", read_coco_crop(root, "train"), read_coco_crop(root, "val"), None, "top1")
        result = probe_splits(cls_common.extractor(ctx), splits, ctx.cfg, ctx.device, ctx.progress)
        result.extra["crop_root"] = str(root)
        return result
