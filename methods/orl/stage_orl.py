"""ORL stage 3 (``orl``): object-level BYOL from random initialisation; exports the backbone.

Reads the correspondence of stage 2 (``ctx.upstream["correspondence"]``), trains
:class:`methods.orl.model.ORLNet` with :class:`methods.orl.views.ORLBatch` through the
shared loop (checkpoint/resume, DDP), then writes ``backbone.pth`` / ``backbone.json``
and the heads (projector + three predictors) into the workdir.
"""
from __future__ import annotations

from typing import Any

from harness.api import StageContext
from harness.checkpoints import save_backbone, save_heads
from harness.errors import ConfigError
from harness.pretrain.augment import TwoViewBatch, ViewAug
from harness.pretrain.data import DataConfig, SceneImages
from harness.pretrain.loop import LoopConfig, train
from methods.orl.artifacts import Correspondence
from methods.orl.model import BRANCHES, ORLNet
from methods.orl.recipe import ORL_KEYS, heads_cfg, momentum_cfg, stage_recipe
from methods.orl.views import JitterConfig, ORLBatch


class _ORLTrainee(ORLNet):
    """:class:`ORLNet` with the loop's ``after_step`` hook (momentum schedule + EMA)."""

    def after_step(self, step: int, total_steps: int) -> None:
        self.set_momentum(step, total_steps)
        self.update_target()


def jitter_cfg(d: dict[str, Any] | None) -> JitterConfig:
    d = dict(d or {})
    known = set(JitterConfig.__dataclass_fields__)
    if set(d) - known:
        raise ConfigError(f"unknown key(s) in recipe section 'orl.jitter': {sorted(set(d) - known)}; "
                          f"known: {sorted(known)}")
    return JitterConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def patch_augs(d: dict[str, Any] | None, patch_size: int) -> tuple[ViewAug, ViewAug]:
    """Two patch augmentations (recipe ``orl.patch_augment``: shared keys + ``view1``/``view2``)."""
    d = dict(d or {})
    v1, v2 = d.pop("view1", {}) or {}, d.pop("view2", {}) or {}
    d["size"] = patch_size
    return ViewAug.from_cfg(v1, **d), ViewAug.from_cfg(v2, **d)


def build_model(recipe: dict[str, Any]) -> _ORLTrainee:
    heads = heads_cfg(recipe)
    base, end = momentum_cfg(recipe)
    weights = dict(recipe.get("loss_weights") or {})
    if set(weights) - set(BRANCHES):
        raise ConfigError(f"orl.loss_weights: unknown branch(es) {sorted(set(weights) - set(BRANCHES))}; "
                          f"known: {list(BRANCHES)}")
    return _ORLTrainee(arch=recipe["arch"], proj_hidden=heads["proj_hidden"], out_dim=heads["out_dim"],
                       pred_hidden=heads["pred_hidden"], base_momentum=base, end_momentum=end, weights=weights)


def run(ctx: StageContext) -> dict[str, Any]:
    recipe = stage_recipe(ctx.cfg, "orl", ORL_KEYS)
    if "correspondence" not in ctx.upstream:
        raise ConfigError("ORL stage 'orl' needs the workdir of stage 'correspondence' in ctx.upstream")
    corr = Correspondence.load(ctx.upstream["correspondence"])
    data_cfg = DataConfig.from_cfg(recipe.get("data"))
    images = SceneImages([ctx.data_root / n for n in corr.names], data_cfg.short_side, data_cfg.max_long,
                         data_cfg.cache)
    patch_size = int(recipe.get("patch_size", 96))
    image_views = TwoViewBatch.from_cfg(recipe.get("augment"))
    batch_fn = ORLBatch(corr, images, image_views.augs, patch_augs(recipe.get("patch_augment"), patch_size),
                        patch_size, jitter_cfg(recipe.get("jitter")),
                        decode_threads=int(recipe.get("decode_threads", 4)))
    model = build_model(recipe)
    summary = train(ctx, model, images, LoopConfig.from_recipe(recipe), batch_fn)
    if ctx.world.get("rank", 0) == 0:
        meta = {"arch": recipe["arch"], "method": ctx.method, "recipe": ctx.recipe, "config_hash": ctx.config_hash,
                "stage": ctx.name}
        save_backbone(model.backbone, ctx.workdir, meta)
        specs = {"projector": model.projector_spec, **{f"predictor_{b}": model.predictor_spec for b in BRANCHES}}
        heads = {"projector": model.projector, **{f"predictor_{b}": model.predictors[b] for b in BRANCHES}}
        save_heads(ctx.workdir, heads, specs, {"method": ctx.method, "stage": ctx.name})
    return summary
