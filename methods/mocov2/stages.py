"""The MoCo v2 pretraining stage: train on the scene images, export backbone + projector."""
from __future__ import annotations

from typing import Any

from harness.api import StageContext
from harness.pretrain.stage import pretrain
from harness.pretrain.moco import MoCoV2Model


def run(ctx: StageContext) -> dict[str, Any]:
    return pretrain(ctx, MoCoV2Model.from_cfg(ctx.cfg))
