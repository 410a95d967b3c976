"""The BYOL pretraining stage: train on the scene images, export backbone + heads."""
from __future__ import annotations

from typing import Any

from harness.api import StageContext
from harness.pretrain.stage import pretrain
from harness.pretrain.byol import BYOLModel


def run(ctx: StageContext) -> dict[str, Any]:
    return pretrain(ctx, BYOLModel.from_cfg(ctx.cfg))
