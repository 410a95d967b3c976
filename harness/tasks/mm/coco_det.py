"""COCO detection and instance segmentation fine-tuned from the backbone: Mask R-CNN
R50-FPN 1x (``coco_det``, the standard column), Mask R-CNN R50-C4 2x as MoCo's
detectron2 configuration (``coco_det_c4``, the ContraCAM / MoCo protocol) and Mask R-CNN on
a ViT with ViTDet's simple feature pyramid (``coco_det_vit``)."""
from __future__ import annotations

from typing import Any, Mapping

from harness.tasks.mm import config as mmconfig
from harness.tasks.mm.backbone import resnet_depth, vit_backbone
from harness.tasks.mm.datasets import DenseDataset, check_coco
from harness.tasks.mm.engine import DenseTask, DenseTaskRunner
from harness.tasks.mm.metrics import coco_evaluator, coco_metrics


def point_at_coco(cfg: Any, preset: Mapping[str, Any], dataset: DenseDataset) -> None:
    """Data root, classes, evaluator, image sizes and class counts."""
    data_root = f"{dataset.root}/"
    classes = tuple(dataset.classes)
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        for ds in mmconfig.leaf_datasets(loader.dataset):
            ds.data_root = data_root
            ds.metainfo = dict(classes=classes)
    cfg.test_evaluator = coco_evaluator(str(dataset.root / "annotations" / "instances_val2017.json"))
    cfg.model.roi_head.bbox_head.num_classes = len(classes)
    cfg.model.roi_head.mask_head.num_classes = len(classes)
    if "train_scales" in preset:
        train = cfg.train_dataloader.dataset.pipeline
        mmconfig.set_transform(train, "RandomChoiceResize", "scales", mmconfig.sizes(preset["train_scales"]))
    if "test_scale" in preset:
        test = cfg.test_dataloader.dataset.pipeline
        mmconfig.set_transform(test, "Resize", "scale", mmconfig.size(preset["test_scale"]))


def configure(cfg: Any, preset: Mapping[str, Any], dataset: DenseDataset, arch: str) -> None:
    """COCO and the FPN input widths."""
    point_at_coco(cfg, preset, dataset)
    depth = resnet_depth(arch)
    cfg.model.backbone.depth = depth
    expansion = 4 if depth >= 50 else 1
    cfg.model.neck.in_channels = [64 * expansion * 2**i for i in range(4)]


def configure_c4(cfg: Any, preset: Mapping[str, Any], dataset: DenseDataset, arch: str) -> None:
    """COCO and the C4 widths (res4 features, res5 head shared by the box and mask heads)."""
    point_at_coco(cfg, preset, dataset)
    mmconfig.set_c4_widths(cfg.model, resnet_depth(arch))
    cfg.model.roi_head.mask_head.in_channels = cfg.model.roi_head.bbox_head.in_channels


def configure_vit(cfg: Any, preset: Mapping[str, Any], dataset: DenseDataset, arch: str) -> None:
    """COCO, the large-scale-jitter size, the ViT of the file, the pyramid width and the
    depth the layer-wise lr decay counts."""
    from harness.core.vit import VIT_ARCHS

    point_at_coco(cfg, preset, dataset)
    if "lsj_size" in preset:
        train = cfg.train_dataloader.dataset.pipeline
        mmconfig.set_transform(train, "RandomResize", "scale", mmconfig.size(preset["lsj_size"]))
        mmconfig.set_transform(train, "RandomCrop", "crop_size", mmconfig.size(preset["lsj_size"]))
    cfg.model.neck.in_channels = vit_backbone(cfg.model.backbone, arch)
    cfg.optim_wrapper.paramwise_cfg.num_layers = VIT_ARCHS[arch][2]


SPEC = DenseTask(
    task="coco_det",
    framework="mmdet",
    check_data=check_coco,
    configure=configure,
    read_metrics=coco_metrics,
)


SPEC_C4 = DenseTask(
    task="coco_det_c4",
    framework="mmdet",
    check_data=check_coco,
    configure=configure_c4,
    read_metrics=coco_metrics,
    init_paths=("backbone", "roi_head.shared_head"),
    parts={"": "backbone", "layer4.": "roi_head.shared_head"},
)


SPEC_VIT = DenseTask(
    task="coco_det_vit",
    framework="mmdet",
    check_data=check_coco,
    configure=configure_vit,
    read_metrics=coco_metrics,
    parts={"": "backbone.vit"},
)


class CocoDet(DenseTaskRunner):
    """Mask R-CNN on COCO 2017: bbox and segm AP (pycocotools), in percent."""

    name = "coco_det"
    spec = SPEC


class CocoDetC4(DenseTaskRunner):
    """Mask R-CNN C4 on COCO 2017 (MoCo's detectron2 protocol): bbox and segm AP, in percent."""

    name = "coco_det_c4"
    spec = SPEC_C4


class CocoDetViT(DenseTaskRunner):
    """Mask R-CNN on a ViT (ViTDet's simple feature pyramid) on COCO 2017: bbox and segm AP, in percent."""

    name = "coco_det_vit"
    spec = SPEC_VIT
