"""ORL stage 3 (``orl``): object-level BYOL from random initialisation; exports the backbone.

Reads the correspondence of stage 2 (``ctx.upstream["correspondence"]``), trains
:class:`harness_methods.orl.model.ORLNet` on batches of :class:`harness_methods.orl.views.ORLBatch`
through the shared loop (checkpoint/resume, DDP), then writes ``backbone.pth`` /
``backbone.json`` and the heads (projector + three predictors) into the workdir.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from harness.core.config_section import checked_section, field_names
from harness.api import StageContext
from harness.core.errors import ConfigError, DataError
from harness.pretrain.augment import TwoViewBatch, ViewAug
from harness.pretrain.data import DataConfig, SceneImages
from harness.pretrain.loop import LoopConfig, train
from harness.pretrain.signature import Signature
from harness.pretrain.stage import export
from harness_methods.orl.artifacts import Correspondence
from harness_methods.orl.model import BRANCHES, ORLNet
from harness_methods.orl.recipe import ORL_KEYS, base_momentum, heads_cfg, stage_recipe
from harness_methods.orl.views import JitterConfig, ORLBatch


def jitter_cfg(d: dict[str, Any] | None) -> JitterConfig:
    d = checked_section(d, field_names(JitterConfig), "recipe section 'orl.jitter'")
    return JitterConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def patch_augs(d: dict[str, Any] | None, patch_size: int) -> tuple[ViewAug, ViewAug]:
    """Two patch augmentations (recipe ``orl.patch_augment``: shared keys + ``view1``/``view2``)."""
    d = dict(d or {})
    v1, v2 = d.pop("view1", {}) or {}, d.pop("view2", {}) or {}
    d["size"] = patch_size
    return ViewAug.from_cfg(v1, **d), ViewAug.from_cfg(v2, **d)


def build_model(recipe: dict[str, Any]) -> ORLNet:
    heads = heads_cfg(recipe)
    weights = checked_section(recipe.get("loss_weights"), BRANCHES, "orl.loss_weights")
    return ORLNet(arch=recipe["arch"], proj_hidden=heads["proj_hidden"], out_dim=heads["out_dim"],
                  pred_hidden=heads["pred_hidden"], base_momentum=base_momentum(recipe), weights=weights,
                  zero_init_residual=bool(recipe.get("zero_init_residual", False)))


def training_images(ctx: StageContext, recipe: dict[str, Any], corr: Correspondence) -> SceneImages:
    """The correspondence's images, in its order, decoded per the recipe's ``data``."""
    data_cfg = DataConfig.from_cfg(recipe.get("data"))
    paths = [ctx.data_root / n for n in corr.names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{missing[0]}: image named by the ORL correspondence is missing "
                        f"({len(missing)} missing in total); rerun stage 'correspondence' for this data root")
    return SceneImages(paths, data_cfg.short_side, data_cfg.max_long, data_cfg.cache)


def run(ctx: StageContext) -> dict[str, Any]:
    recipe = stage_recipe(ctx.cfg, "orl", ORL_KEYS)
    if "correspondence" not in ctx.upstream:
        raise ConfigError("ORL stage 'orl' needs the workdir of stage 'correspondence' in ctx.upstream")
    corr = Correspondence.load(ctx.upstream["correspondence"])
    images = training_images(ctx, recipe, corr)
    patch_size = int(recipe.get("patch_size", 96))
    batch_fn = ORLBatch(corr, images, TwoViewBatch.from_cfg(recipe.get("augment")).augs,
                        patch_augs(recipe.get("patch_augment"), patch_size), patch_size,
                        jitter_cfg(recipe.get("jitter")), decode_threads=int(recipe.get("decode_threads", 4)))
    model = build_model(recipe)
    stage_ctx = replace(ctx, cfg=recipe)
    probe = Signature.for_stage(ctx, model.backbone, images, recipe.get("augment"))
    probe.start()
    summary = train(stage_ctx, model, images, LoopConfig.from_recipe(recipe), batch_fn)
    summary.update(probe.finish())
    export(stage_ctx, model)
    return summary
