"""Semantic segmentation (mmseg): the shared configuration of ADE20K and VOC, FCN R50-D8
on a ResNet and UPerNet with a multi-level neck on a ViT."""
from __future__ import annotations

from typing import Any, Mapping

from harness.tasks.mm import config as mmconfig
from harness.tasks.mm.backbone import resnet_depth, vit_backbone
from harness.tasks.mm.datasets import DenseDataset
from harness.tasks.mm.metrics import seg_evaluator, seg_metrics


def configure(cfg: Any, preset: Mapping[str, Any], dataset: DenseDataset, arch: str) -> None:
    """Data, sizes and the FCN head widths for the ResNet depth."""
    point_at_data(cfg, preset, dataset)
    model = cfg.model
    depth = resnet_depth(arch)
    wide = depth >= 50
    expansion = 4 if wide else 1
    model.backbone.depth = depth
    model.decode_head.in_channels = 512 * expansion
    model.decode_head.channels = 512 if wide else 128
    model.auxiliary_head.in_channels = 256 * expansion
    model.auxiliary_head.channels = 256 if wide else 64


def configure_vit(cfg: Any, preset: Mapping[str, Any], dataset: DenseDataset, arch: str) -> None:
    """Data, sizes, the ViT backbone of the file and the neck / UPerNet input widths."""
    point_at_data(cfg, preset, dataset)
    width = vit_backbone(cfg.model.backbone, arch)
    model = cfg.model
    model.neck.in_channels = [width] * len(model.neck.in_channels)
    model.neck.out_channels = width
    model.decode_head.in_channels = [width] * len(model.decode_head.in_channels)
    model.auxiliary_head.in_channels = width


def point_at_data(cfg: Any, preset: Mapping[str, Any], dataset: DenseDataset) -> None:
    """Data root, evaluator, class counts, crop / resize sizes."""
    data_root = str(dataset.root)
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        for ds in mmconfig.leaf_datasets(loader.dataset):
            ds.data_root = data_root
    cfg.test_evaluator = seg_evaluator()
    for head in (cfg.model.decode_head, cfg.model.auxiliary_head):
        head.num_classes = len(dataset.classes)
    if "crop_size" in preset:
        crop = mmconfig.size(preset["crop_size"])
        cfg.model.data_preprocessor.size = crop
        for ds in mmconfig.leaf_datasets(cfg.train_dataloader.dataset):
            mmconfig.set_transform(ds.pipeline, "RandomCrop", "crop_size", crop)
            if any(step["type"] == "Pad" for step in ds.pipeline):
                mmconfig.set_transform(ds.pipeline, "Pad", "size", crop)
    if "scale" in preset:
        scale = mmconfig.size(preset["scale"])
        for ds in mmconfig.leaf_datasets(cfg.train_dataloader.dataset):
            mmconfig.set_transform(ds.pipeline, "RandomResize", "scale", scale)
        mmconfig.set_transform(cfg.test_dataloader.dataset.pipeline, "Resize", "scale", scale)


def read_metrics(raw: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    return seg_metrics(raw), []
