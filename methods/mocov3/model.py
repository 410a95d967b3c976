"""MoCo v3's network: the engine's query / momentum-key model sized by the recipe.

:class:`harness.pretrain.mocov3.MoCoV3Model`: query backbone, projector and predictor (BN
on every hidden layer and after the last), momentum copies of the backbone and projector
as key encoder, no queue; ``freeze_patch_embed`` needs a ViT trunk (a ConfigError otherwise).
"""
from __future__ import annotations

from harness.pretrain.mocov3 import MoCoV3Model
from harness.core.config_section import ModelRecipe


def build_model(recipe: ModelRecipe) -> MoCoV3Model:
    """The MoCo v3 model of ``recipe``, freshly initialised."""
    return MoCoV3Model(recipe.arch, zero_init_residual=recipe.zero_init_residual, img_size=recipe.img_size,
                       **recipe.section)
