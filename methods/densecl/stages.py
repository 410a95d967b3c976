"""The DenseCL pretraining stage: train on the scene images, export backbone + heads."""
from __future__ import annotations

from typing import Any

from harness.api import StageContext
from harness.pretrain.stage import pretrain
from harness_methods.densecl.model import DenseCLModel


def run(ctx: StageContext) -> dict[str, Any]:
    return pretrain(ctx, DenseCLModel.from_cfg(ctx.cfg))
