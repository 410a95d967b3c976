"""mmdet's CocoMetric, also scoring a model that detects nothing at all.

With no detection in the whole evaluation set, mmdet's CocoMetric logs an error and
returns no metric (pycocotools cannot load an empty result list). Here that case is
evaluated by pycocotools against an empty detection set: AP 0 where the ground truth has
objects, -1 (undefined) where it has none, as for any other model.
"""
from __future__ import annotations

from collections import OrderedDict

from mmdet.datasets.api_wrappers import COCO, COCOeval
from mmdet.evaluation.metrics import CocoMetric
from mmdet.registry import METRICS

STAT_NAMES = ("mAP", "mAP_50", "mAP_75", "mAP_s", "mAP_m", "mAP_l")


@METRICS.register_module()
class CocoMetricScoringEmpty(CocoMetric):
    """CocoMetric that reports AP 0 instead of nothing when there are no detections."""

    def compute_metrics(self, results: list) -> dict[str, float]:
        if self.format_only or any(len(pred["bboxes"]) for _, pred in results):
            return super().compute_metrics(results)
        if self._coco_api is None:
            raise ValueError("CocoMetricScoringEmpty needs the ground-truth ann_file")
        if self.cat_ids is None:
            self.cat_ids = self._coco_api.get_cat_ids(cat_names=self.dataset_meta["classes"])
        if self.img_ids is None:
            self.img_ids = self._coco_api.get_img_ids()
        gt = self._coco_api
        empty = COCO()
        empty.dataset = {"images": gt.dataset["images"], "categories": gt.dataset["categories"], "annotations": []}
        empty.createIndex()
        out: dict[str, float] = OrderedDict()
        for metric in self.metrics:
            if metric not in ("bbox", "segm"):
                raise KeyError(f"CocoMetricScoringEmpty scores bbox and segm, not {metric!r}")
            ev = COCOeval(gt, empty, metric)
            ev.params.catIds = self.cat_ids
            ev.params.imgIds = self.img_ids
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            for i, name in enumerate(STAT_NAMES):
                out[f"{metric}_{name}"] = float(f"{round(ev.stats[i], 3)}")
        return out
