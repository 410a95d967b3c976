"""The BYOL pretraining stage: train on the scene images, export backbone + heads."""
from __future__ import annotations

from typing import Any

from harness.api import StageContext
from harness.pretrain.stage import pretrain
from harness_methods.byol.model import build_model
from harness_methods.byol.recipe import parse


def run(ctx: StageContext) -> dict[str, Any]:
    return pretrain(ctx, build_model(parse(ctx.cfg)))
