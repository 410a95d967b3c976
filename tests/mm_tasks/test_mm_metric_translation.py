"""The translation of mmdet / mmseg metric dicts into task metrics, on hand-written dicts."""
from __future__ import annotations

import math

import pytest

from harness.tasks.mm.metrics import coco_metrics, seg_metrics, voc_det_metrics


def test_coco_fractions_become_named_percentages_and_undefined_ones_are_listed() -> None:
    raw = {"coco/bbox_mAP": 0.123, "coco/bbox_mAP_50": 0.5, "coco/bbox_mAP_75": 0.0, "coco/bbox_mAP_s": -1.0,
           "coco/bbox_mAP_m": 0.25, "coco/bbox_mAP_l": 1.0, "coco/segm_mAP": 0.1, "coco/segm_mAP_l": -1.0,
           "coco/bbox_mAP_copypaste": 0.3, "other/bbox_mAP": 0.9, "coco/bbox_AR@100": 0.4}
    metrics, undefined = coco_metrics(raw)
    assert metrics == {"bbox_AP": 12.3, "bbox_AP50": 50.0, "bbox_AP75": 0.0, "bbox_APm": 25.0, "bbox_APl": 100.0,
                       "segm_AP": 10.0}
    assert sorted(undefined) == ["bbox_APs", "segm_APl"]
    with pytest.raises(ValueError, match="no COCO AP"):
        coco_metrics({"coco/bbox_mAP_s": -1.0})


def test_voc_ap_is_the_mean_over_thresholds_and_ap50_ap75_are_kept_apart() -> None:
    raw = {"pascal_voc/mAP": 0.4, "pascal_voc/AP50": 0.7, "pascal_voc/AP75": 0.35, "pascal_voc/AP55": 0.65}
    assert voc_det_metrics(raw) == {"AP": 40.0, "AP50": 70.0, "AP75": 35.0}
    with pytest.raises(ValueError, match="AP75"):
        voc_det_metrics({"pascal_voc/mAP": 0.4, "pascal_voc/AP50": 0.7})


def test_seg_metrics_are_already_percentages() -> None:
    out = seg_metrics({"mIoU": 41.234567, "mAcc": 55.5, "aAcc": 80.0, "IoU.a": 1.0})
    assert out == {"mIoU": 41.2346, "mAcc": 55.5, "aAcc": 80.0}
    with pytest.raises(ValueError, match="NaN"):
        seg_metrics({"mIoU": math.nan, "mAcc": 1.0, "aAcc": 1.0})
    with pytest.raises(ValueError, match="lacks"):
        seg_metrics({"mIoU": 1.0, "aAcc": 1.0})
