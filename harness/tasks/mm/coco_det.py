"""COCO detection and instance segmentation: Mask R-CNN R50-FPN fine-tuned from the backbone."""
from __future__ import annotations

from typing import Any, Mapping

from harness.api import Task, TaskContext, TaskResult
from harness.tasks.mm import config as mmconfig
from harness.tasks.mm.datasets import DenseDataset, check_coco
from harness.tasks.mm.engine import DenseTask, run_dense
from harness.tasks.mm.metrics import coco_evaluator, coco_metrics


def configure(cfg: Any, preset: Mapping[str, Any], dataset: DenseDataset, depth: int) -> None:
    """Data root, classes, image sizes and FPN input widths."""
    data_root = f"{dataset.root}/"
    classes = tuple(dataset.classes)
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        for ds in mmconfig.leaf_datasets(loader.dataset):
            ds.data_root = data_root
            ds.metainfo = dict(classes=classes)
    cfg.test_evaluator = coco_evaluator(str(dataset.root / "annotations" / "instances_val2017.json"))

    model = cfg.model
    model.backbone.depth = depth
    expansion = 4 if depth >= 50 else 1
    model.neck.in_channels = [64 * expansion * 2**i for i in range(4)]
    model.roi_head.bbox_head.num_classes = len(classes)
    model.roi_head.mask_head.num_classes = len(classes)

    if "train_scales" in preset:
        train = cfg.train_dataloader.dataset.pipeline
        mmconfig.set_transform(train, "RandomChoiceResize", "scales", mmconfig.sizes(preset["train_scales"]))
    if "test_scale" in preset:
        test = cfg.test_dataloader.dataset.pipeline
        mmconfig.set_transform(test, "Resize", "scale", mmconfig.size(preset["test_scale"]))


SPEC = DenseTask(
    task="coco_det",
    framework="mmdet",
    check_data=check_coco,
    configure=configure,
    init_paths=("backbone",),
    parts={"": "backbone"},
    read_metrics=coco_metrics,
)


class CocoDet(Task):
    """Mask R-CNN on COCO 2017: bbox and segm AP (pycocotools), in percent."""

    name = "coco_det"

    def run(self, ctx: TaskContext) -> TaskResult:
        return run_dense(ctx, SPEC)
