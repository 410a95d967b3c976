"""OpenImage-MINI detection and instance segmentation: Mask R-CNN R50-FPN fine-tuned from
the backbone, configured as COCO's (:mod:`harness.tasks.mm.coco_det`) on the build's
COCO-format files (C categories, ``iscrowd=1`` boxes without a mask as ignore regions)."""
from __future__ import annotations

from typing import Any, Mapping

from harness.data.openimage_mini import readers
from harness.tasks.mm import coco_det
from harness.tasks.mm.datasets import DenseDataset
from harness.tasks.mm.engine import DenseTask
from harness.tasks.mm.metrics import coco_evaluator, coco_metrics
from harness.tasks.mm.oim_data import OimTaskRunner, check_oim_instances


def configure(cfg: Any, preset: Mapping[str, Any], dataset: DenseDataset, arch: str) -> None:
    """COCO's configuration (data root, classes, widths, sizes), evaluated with
    pycocotools on the build's ``annotations/instances_val.json``. The annotation files and
    image folders inside the data root come from the config file
    (``benchmarks/mmdet/mask-rcnn_r50_fpn_ms-1x_openimage-mini.py``)."""
    coco_det.configure(cfg, preset, dataset, arch)
    cfg.test_evaluator = coco_evaluator(str(readers.instances_file(dataset.root, "val")))


SPEC = DenseTask(
    task="oim_det",
    framework="mmdet",
    check_data=check_oim_instances,
    configure=configure,
    read_metrics=coco_metrics,
)


class OimDet(OimTaskRunner):
    """Mask R-CNN on OpenImage-MINI: bbox and segm AP (pycocotools), in percent."""

    name = "oim_det"
    spec = SPEC
