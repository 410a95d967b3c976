"""PASCAL VOC 2012 (+SBD aug) semantic segmentation: FCN R50-D8 fine-tuned from the backbone."""
from __future__ import annotations

from harness.tasks.mm import segmentation
from harness.tasks.mm.datasets import check_voc_seg
from harness.tasks.mm.engine import DenseTask, DenseTaskRunner

SPEC = DenseTask(
    task="voc_seg",
    framework="mmseg",
    check_data=check_voc_seg,
    configure=segmentation.configure,
    read_metrics=segmentation.read_metrics,
)


class VocSeg(DenseTaskRunner):
    """FCN on VOC12aug: mIoU, mAcc, aAcc over VOC2012 val, in percent."""

    name = "voc_seg"
    spec = SPEC
