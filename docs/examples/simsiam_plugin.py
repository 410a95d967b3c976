"""A complete method plugin: SimSiam (Chen & He, CVPR 2021) in about 60 lines.

Load it without packaging by naming the module, then run it like any shipped method:

    HARNESS_PLUGINS=simsiam_plugin PYTHONPATH=docs/examples \\
        harness run --method simsiam --suite smoke

The harness gives the plugin its data loading, augmentations, optimiser, schedule,
checkpoint-and-resume loop and backbone export (:func:`harness.pretrain.stage.pretrain`);
the plugin brings the model: a ``backbone``, a ``forward(batch) -> {"loss": ...}`` over
the two augmented views, and the heads to export beside the backbone.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.api import Method, Stage, StageContext
from harness.core.config_section import recipe_section
from harness.core.registry import register_method
from harness.pretrain.models import build_backbone, build_head, feature_dim, mlp_spec
from harness.pretrain.stage import pretrain


class SimSiamModel(nn.Module):
    """Backbone -> projector -> predictor; the loss compares each view's prediction with
    the other view's projection, which receives no gradient (the stop-gradient)."""

    def __init__(self, arch: str, dim: int = 2048, pred_hidden: int = 512) -> None:
        super().__init__()
        self.backbone = build_backbone(arch, zero_init_residual=True)
        self.projector_spec = mlp_spec([feature_dim(arch), dim, dim, dim], bn=True, last_bn=True)
        self.predictor_spec = mlp_spec([dim, pred_hidden, dim], bn=True)
        self.projector, self.predictor = build_head(self.projector_spec), build_head(self.predictor_spec)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        z1, z2 = (self.projector(self.backbone(batch[v])) for v in ("view1", "view2"))
        p1, p2 = self.predictor(z1), self.predictor(z2)
        loss = -(F.cosine_similarity(p1, z2.detach()).mean() + F.cosine_similarity(p2, z1.detach()).mean()) / 2
        return {"loss": loss}

    def export_heads(self) -> dict[str, tuple[nn.Module, dict[str, Any]]]:
        return {"projector": (self.projector, self.projector_spec), "predictor": (self.predictor, self.predictor_spec)}


def run(ctx: StageContext) -> dict[str, Any]:
    """The pretraining stage: the shared loop trains the model and exports its backbone."""
    heads = recipe_section(ctx.cfg, "simsiam", {"dim", "pred_hidden"})
    return pretrain(ctx, SimSiamModel(ctx.cfg["arch"], **heads))


TINY = {  # CPU scale on the synthetic benchmark, as the shipped tiny recipes
    "pretrain_data": "synthetic", "epochs": 30, "arch": "resnet18", "zero_init_residual": True, "batch_size": 32,
    "data": {"dirs": ["coco/train2017"], "short_side": 96, "cache": True, "num_workers": 0},
    "augment": {"size": 64, "scale": [0.2, 1.0], "jitter": [0.4, 0.4, 0.4, 0.1], "jitter_p": 0.8, "gray_p": 0.2,
                "blur_p": 0.5, "blur_sigma": [0.1, 0.6], "blur_kernel": 7, "solarize_p": 0.0},
    "optimizer": {"name": "sgd", "lr": 0.05, "base_batch": 256, "momentum": 0.9, "weight_decay": 1.0e-4},
    "schedule": {"name": "cosine", "warmup_epochs": 0, "min_lr": 0.0, "unit": "step"},
    "simsiam": {"dim": 512, "pred_hidden": 128},
    "loop": {"checkpoint_every": 50, "log_every": 5, "amp": True, "cpu_amp": False, "channels_last": False,
             "sync_bn": True},
}


@register_method("simsiam")
class SimSiam(Method):
    """One stage, ``pretrain``, which exports the backbone."""

    paper = "https://arxiv.org/abs/2011.10566"
    recipes = {"tiny": TINY}

    def stages(self, cfg: dict[str, Any]) -> list[Stage]:
        return [Stage("pretrain", run=f"{__name__}:run", exports_backbone=True)]
