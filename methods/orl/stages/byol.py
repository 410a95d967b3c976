"""ORL stage 1 (``byol``): image-level BYOL with ORL's recipe, via the BYOL plugin's model.

ORL's BYOL differs from ContraCAM's only in settings, all taken from the recipe: heads
(2048-4096-256 projector and 256-4096-256 predictor at paper scale), SGD lr 0.4 at
batch 512 with 4 warm-up epochs and a cosine decay, target momentum 0.99 -> 1 (cosine),
asymmetric blur (p 1.0 / 0.1) and solarisation (p 0 / 0.2). Exports ``backbone.pth`` and
``heads.pth`` (projector, predictor) for stage 2.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from harness.api import StageContext
from harness.pretrain.stage import pretrain
from harness.pretrain.byol import BYOLModel
from harness_methods.orl.recipe import base_momentum, heads_cfg, stage_recipe


def build_model(recipe: dict[str, Any]) -> BYOLModel:
    heads = heads_cfg(recipe)
    return BYOLModel(recipe["arch"], dim=heads["out_dim"], hidden=heads["proj_hidden"],
                     pred_hidden=heads["pred_hidden"], momentum=base_momentum(recipe), momentum_schedule="cosine",
                     zero_init_residual=bool(recipe.get("zero_init_residual", False)))


def run(ctx: StageContext) -> dict[str, Any]:
    recipe = stage_recipe(ctx.cfg, "byol")
    return pretrain(replace(ctx, cfg=recipe), build_model(recipe))
