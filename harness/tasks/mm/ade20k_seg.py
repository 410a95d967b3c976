"""ADE20K semantic segmentation (150 classes) fine-tuned from the backbone: FCN R50-D8 on a
ResNet (``ade20k_seg``), UPerNet with a multi-level neck on a ViT (``ade20k_seg_vit``)."""
from __future__ import annotations

from harness.api import Task, TaskContext, TaskResult
from harness.tasks.mm import segmentation
from harness.tasks.mm.datasets import check_ade20k
from harness.tasks.mm.engine import DenseTask, run_dense

SPEC = DenseTask(
    task="ade20k_seg",
    framework="mmseg",
    check_data=check_ade20k,
    configure=segmentation.configure,
    init_paths=("backbone",),
    parts={"": "backbone"},
    read_metrics=segmentation.read_metrics,
)


class Ade20kSeg(Task):
    """FCN on ADE20K: mIoU, mAcc, aAcc over the validation set, in percent."""

    name = "ade20k_seg"

    def run(self, ctx: TaskContext) -> TaskResult:
        return run_dense(ctx, SPEC)


SPEC_VIT = DenseTask(
    task="ade20k_seg_vit",
    framework="mmseg",
    check_data=check_ade20k,
    configure=segmentation.configure_vit,
    init_paths=("backbone",),
    parts={"": "backbone.vit"},
    read_metrics=segmentation.read_metrics,
)


class Ade20kSegViT(Task):
    """UPerNet on a ViT on ADE20K: mIoU, mAcc, aAcc over the validation set, in percent."""

    name = "ade20k_seg_vit"

    def run(self, ctx: TaskContext) -> TaskResult:
        return run_dense(ctx, SPEC_VIT)
