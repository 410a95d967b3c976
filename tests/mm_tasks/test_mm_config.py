"""The mmengine configs the dense tasks build from the catalog presets."""
from __future__ import annotations

import pytest

from harness.core.errors import ConfigError
from harness.tasks.mm import ade20k_seg, coco_det, voc_det, voc_seg
from harness.tasks.mm.config import leaf_datasets
from harness.tasks.mm.engine import build_config

SPECS = {"coco_det": coco_det.SPEC, "coco_det_c4": coco_det.SPEC_C4, "voc_det": voc_det.SPEC,
         "ade20k_seg": ade20k_seg.SPEC, "voc_seg": voc_seg.SPEC}


def _types(node, found=None):
    found = set() if found is None else found
    if isinstance(node, dict):
        if "type" in node and isinstance(node["type"], str):
            found.add(node["type"])
        for value in node.values():
            _types(value, found)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _types(value, found)
    return found


@pytest.mark.parametrize("task", sorted(SPECS))
def test_tiny_config_points_everything_at_the_unit(task, tmp_path, dense_root, mm_ctx, backbone_r18):
    spec = SPECS[task]
    ctx = mm_ctx(task, tmp_path, dense_root, backbone_r18)
    cfg = build_config(ctx, spec, spec.check_data(dense_root))
    assert cfg.work_dir == str(tmp_path / "mmengine") and cfg.resume is True
    assert cfg.launcher == "none" and cfg.val_dataloader is None
    assert cfg.train_cfg.max_iters == ctx.cfg["iters"]
    assert cfg.train_dataloader.batch_size == ctx.cfg["batch_size"] and cfg.train_dataloader.num_workers == 0
    assert "SyncBN" not in _types(cfg.model)  # one process: plain BN
    for path in spec.init_paths:
        node = cfg.model
        for part in path.split("."):
            node = node[part]
        assert node.init_cfg == {"type": "Pretrained", "checkpoint": str(backbone_r18)}
        assert node.depth == 18
    assert cfg.model.backbone.type == "ResNet" and cfg.model.backbone.style == "pytorch"
    assert cfg.model.backbone.get("deep_stem", False) is False
    assert cfg.model.backbone.get("frozen_stages", -1) == -1
    assert cfg.model.backbone.norm_eval is False
    assert cfg.default_hooks.checkpoint.interval == ctx.cfg["checkpoint_interval"]
    assert [b.type for b in cfg.visualizer.vis_backends][-1] == "TensorboardVisBackend"
    if "_det" in task:
        train = next(leaf_datasets(cfg.train_dataloader.dataset)).pipeline
        scales = next(step.scales for step in train if step.type == "RandomChoiceResize")
        assert scales == [tuple(s) for s in ctx.cfg["train_scales"]]  # a list: choices, not one size
        assert cfg.model.train_cfg.rcnn.sampler.num == ctx.cfg["cfg_options"]["model"]["train_cfg"]["rcnn"]["sampler"]["num"]


@pytest.mark.parametrize("task", sorted(SPECS))
def test_paper_config_keeps_the_published_protocol(task, tmp_path, dense_root, mm_ctx, backbone_r18, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    spec = SPECS[task]
    ctx = mm_ctx(task, tmp_path, dense_root, backbone_r18, preset="paper")
    ctx.device = "cuda"
    cfg = build_config(ctx, spec, spec.check_data(dense_root))
    assert cfg.launcher == "pytorch"
    assert cfg.train_dataloader.batch_size * 8 == 16
    assert "SyncBN" in _types(cfg.model)  # distributed on GPUs: synchronised BN
    assert cfg.model.backbone.depth == 50
    expected = {"coco_det": (90000, 0.02), "coco_det_c4": (180000, 0.02), "voc_det": (24000, 0.02),
                "ade20k_seg": (80000, 0.01), "voc_seg": (20000, 0.01)}
    assert (cfg.train_cfg.max_iters, cfg.optim_wrapper.optimizer.lr) == expected[task]
    if task == "coco_det":
        assert cfg.model.roi_head.bbox_head.type == "Shared4Conv1FCBBoxHead"
        assert cfg.model.neck.in_channels == [256, 512, 1024, 2048]
        assert [s[1] for s in cfg.train_dataloader.dataset.pipeline[2].scales] == [640, 672, 704, 736, 768, 800]
        assert cfg.param_scheduler[1].milestones == [60000, 80000]
        assert cfg.test_evaluator.metric == ["bbox", "segm"]
    if task == "coco_det_c4":  # MoCo's coco_R_50_C4_2x_moco.yaml over Base-RCNN-C4-BN.yaml
        assert cfg.model.backbone.num_stages == 3 and cfg.model.backbone.style == "pytorch"
        assert cfg.model.backbone.init_cfg == {"type": "Pretrained", "checkpoint": str(backbone_r18)}
        head = cfg.model.roi_head
        assert head.shared_head.type == "ResLayerOutputNorm" and head.shared_head.norm_eval is False
        assert head.shared_head.norm_cfg.type == "SyncBN" and head.shared_head.style == "pytorch"
        assert (head.bbox_head.in_channels, head.mask_head.in_channels, head.mask_head.num_convs) == (2048, 2048, 0)
        assert cfg.model.rpn_head.in_channels == 1024 and head.bbox_roi_extractor.out_channels == 1024
        assert cfg.model.data_preprocessor.mean == [123.675, 116.28, 103.53] and cfg.model.data_preprocessor.bgr_to_rgb
        assert cfg.model.test_cfg.rpn.nms_pre == 6000 and cfg.model.test_cfg.rpn.max_per_img == 1000
        assert [s[1] for s in cfg.train_dataloader.dataset.pipeline[2].scales] == [640, 672, 704, 736, 768, 800]
        assert cfg.test_dataloader.dataset.pipeline[1].scale == (1333, 800)
        assert cfg.param_scheduler[0].end == 1000 and cfg.param_scheduler[1].milestones == [120000, 160000]
        assert cfg.optim_wrapper.optimizer.weight_decay == 0.0001 and ctx.cfg["precise_bn_iters"] == 200
    if task == "voc_det":
        assert cfg.model.roi_head.shared_head.type == "ResLayerOutputNorm"
        assert cfg.test_evaluator.eval_mode == "11points"
        assert [d.ann_file for d in cfg.train_dataloader.dataset.datasets] == [
            "VOC2007/ImageSets/Main/trainval.txt", "VOC2012/ImageSets/Main/trainval.txt"]
        assert cfg.test_dataloader.dataset.ann_file == "VOC2007/ImageSets/Main/test.txt"
    if task.endswith("_seg"):
        assert cfg.model.decode_head.in_channels == 2048 and cfg.model.auxiliary_head.in_channels == 1024
        assert cfg.model.data_preprocessor.size == (512, 512)
        assert cfg.param_scheduler[0].type == "PolyLR" and cfg.param_scheduler[0].end == cfg.train_cfg.max_iters
    if task == "ade20k_seg":
        assert cfg.model.decode_head.num_classes == 150
        assert cfg.train_dataloader.dataset.pipeline[1].reduce_zero_label is True
    if task == "voc_seg":
        assert cfg.model.decode_head.num_classes == 21
        assert [d.ann_file for d in cfg.train_dataloader.dataset.datasets] == [
            "ImageSets/Segmentation/train.txt", "ImageSets/Segmentation/aug.txt"]


def test_bad_presets_are_config_errors(tmp_path, dense_root, mm_ctx, backbone_r18, monkeypatch):
    spec = SPECS["coco_det"]
    data = spec.check_data(dense_root)
    with pytest.raises(ConfigError, match="milestones"):
        build_config(mm_ctx("coco_det", tmp_path, dense_root, backbone_r18, milestones=[50]), spec, data)
    with pytest.raises(ConfigError, match="lacks 'lr'"):
        ctx = mm_ctx("coco_det", tmp_path, dense_root, backbone_r18)
        del ctx.cfg["lr"]
        build_config(ctx, spec, data)
    with pytest.raises(ConfigError, match="'model.roi_head.no_such_key' is not in the config"):
        options = {"model": {"roi_head": {"no_such_key": 1}}}
        build_config(mm_ctx("coco_det", tmp_path, dense_root, backbone_r18, cfg_options=options), spec, data)
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ConfigError, match="not divisible"):
        build_config(mm_ctx("coco_det", tmp_path, dense_root, backbone_r18), spec, data)


@pytest.mark.parametrize("task", ["coco_det", "voc_det", "voc_seg"])
def test_test_images_limits_the_test_set(task, tmp_path, dense_root, mm_ctx, backbone_r18):
    import json

    spec = SPECS[task]
    ctx = mm_ctx(task, tmp_path, dense_root, backbone_r18, test_images=3)
    cfg = build_config(ctx, spec, spec.check_data(dense_root))
    assert all(ds.indices == 3 for ds in leaf_datasets(cfg.test_dataloader.dataset))
    assert all(ds.get("indices") is None for ds in leaf_datasets(cfg.train_dataloader.dataset))
    if task == "coco_det":  # pycocotools scores against the annotation file: cut to the same images
        full = json.loads((dense_root / "coco" / "annotations" / "instances_val2017.json").read_text())
        cut = json.loads(open(cfg.test_evaluator["ann_file"]).read())
        assert [im["id"] for im in cut["images"]] == [im["id"] for im in full["images"][:3]]
        assert cut["annotations"] == [a for a in full["annotations"] if a["image_id"] in {im["id"] for im in cut["images"]}]
        assert cut["categories"] == full["categories"]
    with pytest.raises(ConfigError, match="test_images must be a positive integer"):
        build_config(mm_ctx(task, tmp_path, dense_root, backbone_r18, test_images=0), spec, spec.check_data(dense_root))
