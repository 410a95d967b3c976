"""Stage ``objaware_pretrain``: MoCo v2 / BYOL from scratch with the variant's augmentation.

- ``crop`` / ``oracle``: object-aware random crop from ``boxes.json`` of the ``cam_boxes``
  (``gt_boxes`` for the oracle) stage;
- ``bgmix``: background mixup of view 1 with the masks of the ``cam_boxes`` stage;
- ``crop+bgmix``: both; ``mixup`` / ``cutmix``: the baselines (no CAM).

The recipe's ``objaware`` section overrides base keys for this stage (e.g. its data).
Exports ``backbone.pth`` (+ ``heads.pth``) through :func:`harness.pretrain.stage.export`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from harness.core.dev_run import head
from harness.api import StageContext
from harness.core.errors import DataError
from harness_methods.contracam.recipe import ContraCamRecipe, base_recipe


def boxes_stage(recipe: ContraCamRecipe) -> str:
    """The upstream stage whose ``boxes.json`` the crop uses."""
    return "gt_boxes" if recipe.variant == "oracle" else "cam_boxes"


def run(ctx: StageContext) -> dict[str, Any]:
    from harness.pretrain.augment import TwoViewBatch
    from harness.pretrain.data import DataConfig, list_scene_images
    from harness.pretrain.stage import pretrain
    from harness_methods.contracam.augment import BackgroundMixup
    from harness_methods.contracam.batches import ObjectAwareBatch, meta_reader, object_regions
    from harness.cam.boxes import load_boxes
    from harness_methods.contracam.model import build_model
    from harness_methods.contracam.stages.cam import BOXES_FILE, MASK_DIR, image_keys

    recipe = ContraCamRecipe.from_recipe(ctx.cfg)
    cfg = base_recipe(ctx.cfg, second_stage=True)
    boxes = mask_dir = None
    if recipe.uses_crop:
        boxes_path = Path(ctx.upstream[boxes_stage(recipe)]) / BOXES_FILE
        boxes = load_boxes(boxes_path)
    if recipe.uses_bgmix:
        mask_dir = Path(ctx.upstream["cam_boxes"]) / MASK_DIR
    meta = None
    if boxes is not None or mask_dir is not None:
        paths = list_scene_images(ctx.data_root, DataConfig.from_cfg(cfg.get("data")).dirs)
        keys = dict(zip(paths, image_keys(ctx.data_root, paths)))
        if boxes is not None:
            # (a fast dev run trains on, and computed boxes for, the first images only)
            missing = [k for k in head(list(keys.values()), ctx.dev_run) if k not in boxes]
            if missing:
                raise DataError(f"{boxes_path}: no boxes for {len(missing)} pretraining images (e.g. {missing[:3]}); "
                                f"the boxes were computed for other data")
        meta = meta_reader(keys, boxes, mask_dir)
    views = TwoViewBatch.from_cfg(cfg.get("augment"), regions=object_regions if recipe.uses_crop else None)
    bgmix = (BackgroundMixup(recipe.bgmix.cam_thres, recipe.bgmix.aug_prob, recipe.bgmix.queue_size)
             if recipe.uses_bgmix else None)
    mix = recipe.variant if recipe.variant in ("mixup", "cutmix") else None
    batch_fn = ObjectAwareBatch(views, bgmix, mix, recipe.mix.alpha)
    model = build_model(recipe.base, cfg, mixing=mix is not None)
    return pretrain(dataclasses.replace(ctx, cfg=cfg), model, batch_fn, meta)
