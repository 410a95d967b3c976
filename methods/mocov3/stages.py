"""The MoCo v3 pretraining stage: train on the scene images, export backbone + heads."""
from __future__ import annotations

from typing import Any

from harness.api import StageContext
from harness.pretrain.mocov3 import MoCoV3Model
from harness.pretrain.stage import pretrain


def run(ctx: StageContext) -> dict[str, Any]:
    return pretrain(ctx, MoCoV3Model.from_cfg(ctx.cfg))
