"""ADE20K semantic segmentation (150 classes): FCN R50-D8 fine-tuned from the backbone."""
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
