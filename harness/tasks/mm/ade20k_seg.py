"""ADE20K semantic segmentation (150 classes) fine-tuned from the backbone: FCN R50-D8 on a
ResNet (``ade20k_seg``), UPerNet with a multi-level neck on a ViT (``ade20k_seg_vit``)."""
from __future__ import annotations

from harness.tasks.mm import segmentation
from harness.tasks.mm.datasets import check_ade20k
from harness.tasks.mm.engine import DenseTask, DenseTaskRunner

SPEC = DenseTask(
    task="ade20k_seg",
    framework="mmseg",
    check_data=check_ade20k,
    configure=segmentation.configure,
    read_metrics=segmentation.read_metrics,
)

SPEC_VIT = DenseTask(
    task="ade20k_seg_vit",
    framework="mmseg",
    check_data=check_ade20k,
    configure=segmentation.configure_vit,
    read_metrics=segmentation.read_metrics,
    parts={"": "backbone.vit"},
)


class Ade20kSeg(DenseTaskRunner):
    """FCN on ADE20K: mIoU, mAcc, aAcc over the validation set, in percent."""

    name = "ade20k_seg"
    spec = SPEC


class Ade20kSegViT(DenseTaskRunner):
    """UPerNet on a ViT on ADE20K: mIoU, mAcc, aAcc over the validation set, in percent."""

    name = "ade20k_seg_vit"
    spec = SPEC_VIT
