"""BYOL's network: the engine's online / EMA-target model sized by the recipe.

:class:`harness.pretrain.byol.BYOLModel` (shared with ORL and ContraCAM): online backbone,
projector and predictor (``Linear -BN -ReLU -Linear`` each), and EMA copies of the backbone
and projector as the target; the momentum schedule validates when the model is built.
"""
from __future__ import annotations

from harness.pretrain.byol import BYOLModel
from harness.core.config_section import ModelRecipe


def build_model(recipe: ModelRecipe) -> BYOLModel:
    """The BYOL model of ``recipe``, freshly initialised."""
    return BYOLModel(recipe.arch, zero_init_residual=recipe.zero_init_residual, img_size=recipe.img_size,
                     **recipe.section)
