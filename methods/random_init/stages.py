"""Stage ``init``: the seeded random backbone (+ random projector) as the exported files.

With a ``bn_statistics`` section the BatchNorm running statistics are measured first:
``batches`` batches of ``batch_size`` pretraining images (recipe sections ``data`` and
``augment``, the first view), forwarded in train mode under ``no_grad`` with a cumulative
average; no weight changes. This is the floor that separates learned features from
feature normalisation.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from harness.core.batchnorm import averaged_bn_statistics
from harness.core.config_section import recipe_section
from harness.api import StageContext
from harness.pretrain.augment import StepRNG, TwoViewBatch
from harness.pretrain.data import StepSampler, collate
from harness.pretrain.models import build_backbone, build_head, feature_dim, mlp_spec
from harness.pretrain.stage import export, scene_dataset


class RandomModel(nn.Module):
    """The backbone and projector at their initialisation."""

    def __init__(self, arch: str, zero_init_residual: bool, hidden: int | None, dim: int, bn: bool,
                 img_size: int | None = None) -> None:
        super().__init__()
        d = feature_dim(arch)
        self.backbone = build_backbone(arch, zero_init_residual, img_size)
        self.projector_spec = mlp_spec([d, hidden or d, dim], bn=bn)
        self.projector = build_head(self.projector_spec)

    def export_heads(self) -> dict[str, tuple[nn.Module, dict[str, Any]]]:
        return {"projector": (self.projector, self.projector_spec)}


def _section(cfg: dict[str, Any], name: str, known: set[str]) -> dict[str, Any]:
    return recipe_section(cfg, name, known)


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
    proj = _section(ctx.cfg, "projector", {"dim", "hidden", "bn"})
    bn = _section(ctx.cfg, "bn_statistics", {"batches", "batch_size"})
    torch.manual_seed(ctx.seed)
    model = RandomModel(ctx.cfg["arch"], bool(ctx.cfg.get("zero_init_residual", False)), proj.get("hidden"),
                        int(proj.get("dim", 128)), bool(proj.get("bn", True)), ctx.cfg.get("img_size"))
    seen = measure_bn_statistics(ctx, model.backbone, int(bn["batches"]), int(bn["batch_size"])) if bn else 0
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    export(ctx, model)
    ctx.progress(1, 1)
    return {"parameters": sum(p.numel() for p in model.backbone.parameters()), "bn_images": seen}
