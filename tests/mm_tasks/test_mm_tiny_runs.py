"""Each dense task's tiny preset trains and evaluates end to end on CPU through mmengine."""
from __future__ import annotations

import math

import pytest

from harness.tasks.mm.ade20k_seg import Ade20kSeg, Ade20kSegViT
from harness.tasks.mm.coco_det import CocoDet, CocoDetC4, CocoDetViT
from harness.tasks.mm.voc_det import VocDet
from harness.tasks.mm.voc_seg import VocSeg

EXPECTED = {
    "coco_det": (CocoDet, "mmdet", {"bbox_AP", "bbox_AP50", "bbox_AP75", "segm_AP", "segm_AP50", "segm_AP75"}),
    "coco_det_c4": (CocoDetC4, "mmdet", {"bbox_AP", "bbox_AP50", "bbox_AP75", "segm_AP", "segm_AP50", "segm_AP75"}),
    "voc_det": (VocDet, "mmdet", {"AP", "AP50", "AP75"}),
    "coco_det_vit": (CocoDetViT, "mmdet", {"bbox_AP", "bbox_AP50", "bbox_AP75", "segm_AP", "segm_AP50", "segm_AP75"}),
    "ade20k_seg": (Ade20kSeg, "mmseg", {"mIoU", "mAcc", "aAcc"}),
    "ade20k_seg_vit": (Ade20kSegViT, "mmseg", {"mIoU", "mAcc", "aAcc"}),
    "voc_seg": (VocSeg, "mmseg", {"mIoU", "mAcc", "aAcc"}),
}


def _check(result, task: str) -> None:
    _, framework, names = EXPECTED[task]
    assert names <= set(result.metrics)
    for name, value in result.metrics.items():
        assert math.isfinite(value) and 0.0 <= value <= 100.0, (name, value)
        assert result.higher_is_better[name] is True
    assert result.framework["name"] == framework
    assert {"mmcv", "mmengine", "torch", "mmdet" if framework == "mmdet" else "mmsegmentation"} <= set(result.framework["versions"])
    assert len(result.dataset["fingerprint"]) == 64
    assert result.extra["backbone_verified"] is True and result.extra["start_iter"] == 0


def _run(task, tmp_path, dense_root, mm_ctx, backbone, **overrides):
    cls = EXPECTED[task][0]
    steps = []
    ctx = mm_ctx(task, tmp_path / "work", dense_root, backbone, progress=lambda s, t, **_: steps.append((s, t)), **overrides)
    result = cls().run(ctx)
    return result, steps


@pytest.mark.parametrize("task", ["voc_seg", "ade20k_seg", "voc_det", "coco_det", "coco_det_c4"])
def test_tiny_preset_trains_and_evaluates(task, tmp_path, dense_root, mm_ctx, backbone_r18):
    result, steps = _run(task, tmp_path, dense_root, mm_ctx, backbone_r18)
    _check(result, task)
    iters = result.extra["iters"]
    assert steps[0] == (1, iters) and (iters, iters) in steps
    logs = list((tmp_path / "work" / "mmengine").glob("*/*.log"))
    assert logs and "backbone check passed" in logs[0].read_text()
    assert ("precise BN: statistics" in logs[0].read_text()) == (result.extra["precise_bn_iters"] > 0)
    assert (tmp_path / "work" / "mmengine" / f"iter_{iters}.pth").is_file()
    events = list((tmp_path / "work" / "mmengine").glob("*/vis_data/events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0  # mmengine's TensorboardVisBackend: loss and lr per iter


@pytest.mark.parametrize("task", ["coco_det_vit", "ade20k_seg_vit"])
def test_vit_tiny_preset_trains_and_evaluates(task, tmp_path, dense_root, mm_ctx, backbone_vit):
    result, steps = _run(task, tmp_path, dense_root, mm_ctx, backbone_vit)
    _check(result, task)
    assert (result.extra["iters"], result.extra["iters"]) in steps
    log = next((tmp_path / "work" / "mmengine").glob("*/*.log")).read_text()
    assert "backbone check passed: 150 tensors" in log  # every tensor of the ViT-T file, in backbone.vit


@pytest.mark.slow
def test_tiny_run_is_deterministic(tmp_path, dense_root, mm_ctx, backbone_r18):
    first, _ = _run("voc_seg", tmp_path / "a", dense_root, mm_ctx, backbone_r18, iters=4, checkpoint_interval=2)
    second, _ = _run("voc_seg", tmp_path / "b", dense_root, mm_ctx, backbone_r18, iters=4, checkpoint_interval=2)
    assert first.metrics == second.metrics


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path, dense_root, mm_ctx, backbone_r18):
    class Killed(Exception):
        pass

    def die_at_3(step, total, **_):
        if step == 3:
            raise Killed

    ctx = mm_ctx("voc_seg", tmp_path / "work", dense_root, backbone_r18, iters=4, checkpoint_interval=2, progress=die_at_3)
    with pytest.raises(Killed):
        VocSeg().run(ctx)
    work = tmp_path / "work" / "mmengine"
    assert (work / "iter_2.pth").is_file() and not (work / "iter_4.pth").exists()
    steps = []
    ctx = mm_ctx("voc_seg", tmp_path / "work", dense_root, backbone_r18, iters=4, checkpoint_interval=2,
                 progress=lambda s, t, **_: steps.append(s))
    result = VocSeg().run(ctx)
    assert result.extra["start_iter"] == 2
    assert result.extra["backbone_verified"] is True  # checked by the killed run that started from the file
    assert steps[:2] == [3, 4]
    assert (work / "iter_4.pth").is_file()
    assert all(0.0 <= v <= 100.0 for v in result.metrics.values())
