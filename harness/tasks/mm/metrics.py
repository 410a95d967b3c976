"""Evaluator configs and the translation of mmdet / mmseg metric dicts into task metrics.

mmdet's CocoMetric reports fractions rounded to 3 decimals (0.1 AP point) and -1 where
pycocotools has no ground truth (e.g. APl without large objects); VOCMetric reports
fractions; mmseg's IoUMetric reports percentages rounded to 2 decimals. Task metrics are
percentages; undefined ones (-1) are left out and listed separately.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

def _pct(fraction: float) -> float:
    """A fraction as a percentage, without float noise beyond 4 decimals."""
    return round(100.0 * float(fraction), 4)


COCO_NAMES = {"mAP": "AP", "mAP_50": "AP50", "mAP_75": "AP75", "mAP_s": "APs", "mAP_m": "APm", "mAP_l": "APl"}


def coco_evaluator(ann_file: str, metrics: tuple[str, ...] = ("bbox", "segm")) -> dict[str, Any]:
    """mmdet CocoMetric (pycocotools COCOeval) on ``ann_file``, in the variant that also
    scores a model without any detection (:mod:`harness.tasks.mm.coco_metric`)."""
    from harness.tasks.mm import coco_metric

    return dict(type=coco_metric.CocoMetricScoringEmpty.__name__, ann_file=ann_file, metric=list(metrics),
                format_only=False)


def coco_metrics(raw: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    """``coco/bbox_mAP_50``-style fractions -> ``bbox_AP50`` percentages, and the names of
    the undefined (-1) ones."""
    metrics: dict[str, float] = {}
    undefined: list[str] = []
    for key, value in raw.items():
        head, _, name = key.rpartition("/")
        if head != "coco" or "_" not in name:
            continue
        iou_type, _, stat = name.partition("_")
        if stat not in COCO_NAMES:
            continue
        out = f"{iou_type}_{COCO_NAMES[stat]}"
        if float(value) < 0:
            undefined.append(out)
        else:
            metrics[out] = _pct(value)
    if not metrics:
        raise ValueError(f"no COCO AP in the evaluator output: {sorted(raw)}")
    return metrics, undefined


VOC_IOU_THRS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def voc_evaluator() -> dict[str, Any]:
    """mmdet VOCMetric: VOC2007 11-point AP at IoU 0.50:0.05:0.95."""
    return dict(type="VOCMetric", metric="mAP", eval_mode="11points", iou_thrs=list(VOC_IOU_THRS))


def voc_det_metrics(raw: Mapping[str, float]) -> dict[str, float]:
    """``pascal_voc/AP50`` etc. (fractions) -> AP50, AP75 and AP (mean over the 10 IoUs)."""
    plain = {key.rpartition("/")[2]: float(value) for key, value in raw.items()}
    missing = [k for k in ("mAP", "AP50", "AP75") if k not in plain]
    if missing:
        raise ValueError(f"VOCMetric output lacks {missing}: {sorted(raw)}")
    return {"AP": _pct(plain["mAP"]), "AP50": _pct(plain["AP50"]), "AP75": _pct(plain["AP75"])}


def seg_evaluator() -> dict[str, Any]:
    """mmseg IoUMetric (areas summed over the whole evaluation set)."""
    return dict(type="IoUMetric", iou_metrics=["mIoU"])


def seg_metrics(raw: Mapping[str, float]) -> dict[str, float]:
    """IoUMetric's ``mIoU``, ``mAcc``, ``aAcc`` (already percentages)."""
    plain = {key.rpartition("/")[2]: float(value) for key, value in raw.items()}
    missing = [k for k in ("mIoU", "mAcc", "aAcc") if k not in plain]
    if missing:
        raise ValueError(f"IoUMetric output lacks {missing}: {sorted(raw)}")
    out = {k: round(plain[k], 4) for k in ("mIoU", "mAcc", "aAcc")}
    bad = [k for k, v in out.items() if math.isnan(v)]
    if bad:
        raise ValueError(f"IoUMetric gave NaN for {bad}: no labelled pixels in the evaluation set")
    return out
