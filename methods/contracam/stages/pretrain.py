"""Stage ``pretrain``: vanilla MoCo v2 or BYOL (recipe key ``base``) on the pretraining images.

Writes ``backbone.pth`` and ``heads.pth`` (the projector the CAM needs) in its workdir;
they are artifacts of this stage, not the method's exported backbone.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from harness.api import StageContext
from harness_methods.contracam.recipe import base_name, base_recipe


def run(ctx: StageContext) -> dict[str, Any]:
    from harness.pretrain.stage import pretrain
    from harness_methods.contracam.model import build_model

    cfg = base_recipe(ctx.cfg)
    return pretrain(dataclasses.replace(ctx, cfg=cfg), build_model(base_name(ctx.cfg), cfg))
