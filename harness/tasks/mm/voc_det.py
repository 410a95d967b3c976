"""PASCAL VOC detection: Faster R-CNN R50-C4 on VOC07+12 trainval, tested on VOC07 test."""
from __future__ import annotations

from typing import Any, Mapping

from harness.tasks.mm import config as mmconfig
from harness.tasks.mm.backbone import resnet_depth
from harness.tasks.mm.datasets import DenseDataset, check_voc_det
from harness.tasks.mm.engine import DenseTask, DenseTaskRunner
from harness.tasks.mm.metrics import voc_det_metrics, voc_evaluator


def configure(cfg: Any, preset: Mapping[str, Any], dataset: DenseDataset, arch: str) -> None:
    """Data root, classes, image sizes and the C4 widths (res4 features, res5 head)."""
    data_root = f"{dataset.root}/"
    classes = tuple(dataset.classes)
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        for ds in mmconfig.leaf_datasets(loader.dataset):
            ds.data_root = data_root
            ds.metainfo = dict(classes=classes)
    cfg.test_evaluator = voc_evaluator()

    mmconfig.set_c4_widths(cfg.model, resnet_depth(arch))
    cfg.model.roi_head.bbox_head.num_classes = len(classes)

    if "train_scales" in preset:
        scales = mmconfig.sizes(preset["train_scales"])
        for ds in mmconfig.leaf_datasets(cfg.train_dataloader.dataset):
            mmconfig.set_transform(ds.pipeline, "RandomChoiceResize", "scales", scales)
    if "test_scale" in preset:
        test = cfg.test_dataloader.dataset.pipeline
        mmconfig.set_transform(test, "Resize", "scale", mmconfig.size(preset["test_scale"]))


def read_metrics(raw: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    return voc_det_metrics(raw), []


SPEC = DenseTask(
    task="voc_det",
    framework="mmdet",
    check_data=check_voc_det,
    configure=configure,
    read_metrics=read_metrics,
    init_paths=("backbone", "roi_head.shared_head"),
    parts={"": "backbone", "layer4.": "roi_head.shared_head"},
)


class VocDet(DenseTaskRunner):
    """Faster R-CNN C4 on VOC07+12: VOC2007 11-point AP50, AP75 and AP, in percent."""

    name = "voc_det"
    spec = SPEC
