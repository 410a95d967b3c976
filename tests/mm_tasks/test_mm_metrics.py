"""The metric path of the dense tasks against pycocotools / mmseg on hand-built predictions."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from harness.tasks.mm.metrics import coco_evaluator, coco_metrics, seg_evaluator, seg_metrics, voc_det_metrics, voc_evaluator

SIZE = 100
# two medium objects of one category, xywh
GT_BOXES = [(10, 10, 40, 40), (55, 50, 40, 45)]


def _rect_mask(x, y, w, h) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[y:y + h, x:x + w] = 1
    return mask


def _rle(mask: np.ndarray) -> dict:
    rle = mask_util.encode(np.asfortranarray(mask))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


@pytest.fixture
def coco_gt(tmp_path):
    anns = [{"id": i + 1, "image_id": 1, "category_id": 52, "bbox": list(b), "area": float(b[2] * b[3]),
             "iscrowd": 0, "segmentation": _rle(_rect_mask(*b))} for i, b in enumerate(GT_BOXES)]
    gt = {"images": [{"id": 1, "file_name": "000000000001.jpg", "width": SIZE, "height": SIZE}],
          "annotations": anns, "categories": [{"id": 24, "name": "zebra"}, {"id": 52, "name": "banana"}]}
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(gt))
    return path


def _run_coco(ann_file, boxes_xywh, scores):
    """Our path: mmdet CocoMetric as the task configures it, then coco_metrics."""
    from mmdet.registry import METRICS
    from mmdet.utils import register_all_modules

    register_all_modules()
    metric = METRICS.build(coco_evaluator(str(ann_file)))
    metric.dataset_meta = {"classes": ("zebra", "banana")}
    xyxy = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in boxes_xywh], dtype=torch.float32).reshape(-1, 4)
    masks = torch.from_numpy(np.array([_rect_mask(*b) for b in boxes_xywh], dtype=bool).reshape(-1, SIZE, SIZE))
    sample = {"img_id": 1, "ori_shape": (SIZE, SIZE),
              "pred_instances": {"bboxes": xyxy, "scores": torch.tensor(scores), "labels": torch.ones(len(scores), dtype=torch.long),
                                 "masks": masks}}
    metric.process({}, [sample])
    return coco_metrics(metric.evaluate(1))


def _pycocotools_ap(ann_file, boxes_xywh, scores, iou_type):
    gt = COCO(str(ann_file))
    dets = [{"image_id": 1, "category_id": 52, "bbox": list(b), "score": s,
             "segmentation": _rle(_rect_mask(*b))} for b, s in zip(boxes_xywh, scores)]
    ev = COCOeval(gt, gt.loadRes(dets), iou_type)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return 100 * ev.stats[0], 100 * ev.stats[1], 100 * ev.stats[2]


def test_coco_perfect_predictions_give_ap_100(coco_gt):
    metrics, undefined = _run_coco(coco_gt, GT_BOXES, [0.9, 0.8])
    for iou_type in ("bbox", "segm"):
        assert metrics[f"{iou_type}_AP"] == pytest.approx(100.0)
        assert metrics[f"{iou_type}_AP50"] == pytest.approx(100.0)
        assert metrics[f"{iou_type}_APm"] == pytest.approx(100.0)
    # no small or large objects: pycocotools has no AP there, so the task reports none
    assert set(undefined) == {"bbox_APs", "bbox_APl", "segm_APs", "segm_APl"}


def test_coco_partial_case_matches_pycocotools_and_hand_value(coco_gt):
    # a false positive above the one true positive: precision 1/2 up to recall 1/2,
    # so AP = 0.5 * 51 / 101 (COCO's 101 recall points) at every IoU threshold
    boxes = [(5, 70, 20, 20), GT_BOXES[0]]
    scores = [0.95, 0.9]
    metrics, _ = _run_coco(coco_gt, boxes, scores)
    hand = 100 * 0.5 * 51 / 101
    for iou_type in ("bbox", "segm"):
        ap, ap50, ap75 = _pycocotools_ap(coco_gt, boxes, scores, iou_type)
        assert ap == pytest.approx(hand)
        # mmdet rounds AP to 0.1 point
        assert metrics[f"{iou_type}_AP"] == pytest.approx(ap, abs=0.05)
        assert metrics[f"{iou_type}_AP50"] == pytest.approx(ap50, abs=0.05)
        assert metrics[f"{iou_type}_AP75"] == pytest.approx(ap75, abs=0.05)


def test_coco_no_detection_at_all_scores_zero(coco_gt):
    # mmdet's own CocoMetric returns no metric here; the task's variant scores AP 0
    metrics, undefined = _run_coco(coco_gt, [], [])
    assert metrics == {f"{t}_{m}": 0.0 for t in ("bbox", "segm") for m in ("AP", "AP50", "AP75", "APm")}
    assert set(undefined) == {"bbox_APs", "bbox_APl", "segm_APs", "segm_APl"}


def _run_voc(gt_boxes, pred_boxes, scores):
    from mmdet.registry import METRICS
    from mmdet.utils import register_all_modules

    register_all_modules()
    metric = METRICS.build(voc_evaluator())
    metric.dataset_meta = {"classes": ("a", "b")}
    sample = {
        "gt_instances": {"bboxes": torch.tensor(gt_boxes, dtype=torch.float32), "labels": torch.zeros(len(gt_boxes), dtype=torch.long)},
        "ignored_instances": {"bboxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.long)},
        "pred_instances": {"bboxes": torch.tensor(pred_boxes, dtype=torch.float32), "scores": torch.tensor(scores),
                           "labels": torch.zeros(len(scores), dtype=torch.long)},
    }
    metric.process({}, [sample])
    return voc_det_metrics(metric.evaluate(1))


def test_voc_perfect_and_partial_11_point_ap():
    gt = [[10, 10, 49, 49], [60, 55, 89, 94]]
    perfect = _run_voc(gt, gt, [0.9, 0.8])
    assert perfect == pytest.approx({"AP": 100.0, "AP50": 100.0, "AP75": 100.0})
    # one of two objects found: precision 1 at the recall points 0, 0.1, ..., 0.5 -> 6 / 11
    partial = _run_voc(gt, gt[:1], [0.9])
    assert partial["AP"] == pytest.approx(100 * 6 / 11, abs=1e-4)  # float32 inside mmdet
    assert partial["AP50"] == pytest.approx(100 * 6 / 11, abs=0.05)


def _run_seg(pred, gt, classes=("a", "b"), ignore_index=255):
    from mmseg.registry import METRICS
    from mmseg.utils import register_all_modules

    register_all_modules()
    metric = METRICS.build(seg_evaluator())
    metric.dataset_meta = {"classes": classes}
    sample = {"pred_sem_seg": {"data": torch.tensor(pred)[None]}, "gt_sem_seg": {"data": torch.tensor(gt)[None]}}
    metric.process({}, [sample])
    return seg_metrics(metric.evaluate(1))


def test_seg_perfect_prediction_gives_miou_100():
    gt = [[0, 0, 1], [1, 1, 255]]
    assert _run_seg(gt, gt) == pytest.approx({"mIoU": 100.0, "mAcc": 100.0, "aAcc": 100.0})


def test_seg_partial_case_hand_computed():
    # class a: 1 of 2 pixels right, union 2 -> IoU 1/2; class b: 2 right, union 3 -> 2/3;
    # the ignored pixel counts nowhere
    gt = [[0, 0, 255], [1, 1, 255]]
    pred = [[0, 1, 0], [1, 1, 1]]
    out = _run_seg(pred, gt)
    assert out["mIoU"] == pytest.approx(100 * (1 / 2 + 2 / 3) / 2, abs=0.005)
    assert out["mAcc"] == pytest.approx(100 * (1 / 2 + 1) / 2, abs=0.005)
    assert out["aAcc"] == pytest.approx(75.0, abs=0.005)
