"""COCO-Crop: build the object crops from COCO instances, then linear-probe them.

Train on the train2017 crops (``val_size`` of them, seeded, select the L2 penalty), test
on the val2017 crops; top-1 over the 80 categories. Crops are built once into
``crop_dir`` (default: ``<harness cache>/coco_crop/<annotations + crop spec hash>``) and
shared by every backbone. Config: ``crops`` {min_area, margin, size, quality},
``build_workers``, plus every linear-probe key.
"""
from __future__ import annotations

from harness.api import Task, TaskContext, TaskResult
from harness.data.folders import read_coco_crop
from harness.data.object_crops import build_coco_crop
from harness.tasks import cls_common
from harness.data.registry import ProbeSplits
from harness.tasks.linear_probe import probe_splits


class CocoCrop(Task):
    """Build COCO-Crop from COCO instances and linear-probe it."""

    def run(self, ctx: TaskContext) -> TaskResult:
        root = build_coco_crop(ctx.data_root, ctx.cfg, ctx.progress, ctx.dev_run)
        splits = ProbeSplits("coco_crop", read_coco_crop(root, "train"), read_coco_crop(root, "val"), None, "top1")
        result = probe_splits(cls_common.extractor(ctx), splits, ctx.cfg, ctx.device, ctx.progress)
        result.extra["crop_root"] = str(root)
        return result
