"""OpenImage-MINI semantic segmentation: FCN R50-D8 fine-tuned from the backbone on the
build's semantic maps (background 0 and C classes, 255 ignored, no reduce_zero_label)."""
from __future__ import annotations

from typing import Any, Mapping

from harness.tasks.mm import config as mmconfig
from harness.tasks.mm import segmentation
from harness.tasks.mm.datasets import DenseDataset
from harness.tasks.mm.engine import DenseTask
from harness.tasks.mm.oim_data import OimTaskRunner, check_oim_semantic


def configure(cfg: Any, preset: Mapping[str, Any], dataset: DenseDataset, arch: str) -> None:
    """The shared FCN configuration, plus the class names: the config file's datasets are
    plain ``BaseSegDataset`` folders (``images/<split>`` + ``seg/<split>``) with no
    built-in class list."""
    segmentation.configure(cfg, preset, dataset, arch)
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        for ds in mmconfig.leaf_datasets(loader.dataset):
            ds.metainfo = dict(classes=tuple(dataset.classes))


SPEC = DenseTask(
    task="oim_seg",
    framework="mmseg",
    check_data=check_oim_semantic,
    configure=configure,
    read_metrics=segmentation.read_metrics,
)


class OimSeg(OimTaskRunner):
    """FCN on OpenImage-MINI: mIoU, mAcc, aAcc over the val split (C + 1 classes), in percent."""

    name = "oim_seg"
    spec = SPEC
