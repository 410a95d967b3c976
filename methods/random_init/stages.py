"""Stage ``init``: the seeded random backbone (+ random projector) as the exported files.

With a ``bn_statistics`` section the BatchNorm running statistics are measured first:
``batches`` batches of ``batch_size`` pretraining images (recipe sections ``data`` and
``augment``, the first view), forwarded in train mode under ``no_grad`` with a cumulative
average; no weight changes. This is the floor that separates learned features from
feature normalisation.
"""
from __future__ import annotations

from typing import Any

import torch.nn as nn

from harness.api import StageContext
from harness.core.batchnorm import averaged_bn_statistics
from harness.pretrain.augment import StepRNG, TwoViewBatch
from harness.pretrain.data import StepSampler, collate
from harness.pretrain.stage import export, scene_dataset
from harness_methods.random_init.model import build_model
from harness_methods.random_init.recipe import parse


def measure_bn_statistics(ctx: StageContext, net: nn.Module, batches: int, batch_size: int) -> int:
    """Replace every BatchNorm's running statistics by their average over ``batches``
    augmented batches of the pretraining images; returns the images seen."""
    data = scene_dataset(ctx)
    aug = TwoViewBatch.from_cfg(ctx.cfg.get("augment"))
    sampler = StepSampler(n=len(data), global_batch=batch_size, seed=ctx.seed, epochs=-(-batches * batch_size // len(data)))
    seen = 0
    with averaged_bn_statistics(net):
        for step, idx in enumerate(sampler):
            if step == batches:
                break
            raw = collate([data[i] for i in idx])
            net(aug(raw, StepRNG(ctx.seed, step))["view1"])
            seen += len(idx)
    net.eval()
    return seen


def run(ctx: StageContext) -> dict[str, Any]:
    recipe = parse(ctx.cfg)
    model = build_model(recipe, ctx.seed)
    bn = recipe.bn_statistics
    seen = measure_bn_statistics(ctx, model.backbone, bn.batches, bn.batch_size) if bn else 0
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    export(ctx, model)
    ctx.progress(1, 1)
    return {"parameters": sum(p.numel() for p in model.backbone.parameters()), "bn_images": seen}
