"""Glue between a method stage and the loop: dataset, batch function, training, export.

Shared recipe keys (every method using this module):

- ``arch`` (``resnet18``/``resnet50``...), ``zero_init_residual`` (bool),
- ``epochs``, ``batch_size`` (global), ``optimizer``, ``schedule``, ``loop``
  (see :class:`harness.pretrain.loop.LoopConfig`),
- ``data`` (:class:`harness.pretrain.data.DataConfig`), ``augment``
  (:meth:`harness.pretrain.augment.TwoViewBatch.from_cfg`).

An exportable model has a ``backbone`` attribute (a torchvision ResNet, ``fc`` removed)
and ``export_heads() -> {name: (module, spec)}`` (heads rebuilt by
:func:`harness.core.heads.load_heads`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch.nn as nn

from harness.api import StageContext
from harness.core.checkpoints import save_backbone
from harness.core.heads import save_heads
from harness.core.errors import ConfigError
from harness.pretrain import dist
from harness.pretrain.augment import TwoViewBatch
from harness.pretrain.data import DataConfig, MetaFn, SceneImages
from harness.pretrain.loop import BatchFn, LoopConfig, train
from harness.pretrain.signature import Signature


class HeadExporter(Protocol):
    def export_heads(self) -> dict[str, tuple[nn.Module, dict[str, Any]]]: ...


class Exportable(HeadExporter, Protocol):
    backbone: nn.Module


def require(cfg: dict[str, Any], *keys: str) -> None:
    """Raise :class:`ConfigError` naming the missing top-level recipe keys."""
    missing = [k for k in keys if k not in cfg]
    if missing:
        raise ConfigError(f"recipe lacks required key(s) {missing}")


def scene_dataset(ctx: StageContext, meta: MetaFn | None = None) -> SceneImages:
    """The pretraining images of ``ctx.data_root`` per the recipe's ``data`` section."""
    return SceneImages.from_root(ctx.data_root, DataConfig.from_cfg(ctx.cfg.get("data")), meta)


def save_model_heads(workdir: Path, model: HeadExporter, meta: dict[str, Any]) -> None:
    """Write the model's exported heads (if any) as ``heads.pth``/``heads.json`` in ``workdir``."""
    heads = model.export_heads()
    if heads:
        save_heads(workdir, {k: m for k, (m, _) in heads.items()}, {k: s for k, (_, s) in heads.items()}, meta)


def export(ctx: StageContext, model: Exportable) -> Path | None:
    """Write ``backbone.pth``/``backbone.json`` and ``heads.pth``/``heads.json`` (rank 0)."""
    path = None
    if ctx.world.get("rank", 0) == 0:
        meta = {"arch": ctx.cfg["arch"], "method": ctx.method, "recipe": ctx.recipe,
                "config_hash": ctx.config_hash, "stage": ctx.name, "seed": ctx.seed,
                "pretrain_data": ctx.cfg.get("pretrain_data", ""), "epochs": ctx.cfg.get("epochs")}
        if "img_size" in ctx.cfg:  # a ViT: the image size its position embedding is for
            meta["img_size"] = int(ctx.cfg["img_size"])
        path = save_backbone(model.backbone, ctx.workdir, meta)
        save_model_heads(ctx.workdir, model, {"arch": ctx.cfg["arch"], "method": ctx.method, "stage": ctx.name})
    dist.barrier()
    return path


def pretrain(ctx: StageContext, model: nn.Module, batch_fn: BatchFn | None = None, meta: MetaFn | None = None,
             exports: bool = True) -> dict[str, Any]:
    """Train ``model`` with the recipe in ``ctx.cfg`` and (if ``exports``) export it.

    ``batch_fn`` defaults to :class:`TwoViewBatch` built from ``ctx.cfg["augment"]``.
    Returns the loop's summary and the stage's signature (:class:`Signature`).
    """
    require(ctx.cfg, "arch", "epochs", "batch_size", "pretrain_data")
    data = scene_dataset(ctx, meta)
    fn = batch_fn or TwoViewBatch.from_cfg(ctx.cfg.get("augment"))
    probe = Signature.for_stage(ctx, model.backbone, data, ctx.cfg.get("augment"))  # type: ignore[arg-type]
    probe.start()
    summary = train(ctx, model, data, LoopConfig.from_recipe(ctx.cfg), fn)
    summary.update(probe.finish())
    if exports:
        export(ctx, model)  # type: ignore[arg-type]
    return summary

