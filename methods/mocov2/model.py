"""MoCo v2's network: the engine's two-view MoCo model sized by the recipe.

:class:`harness.pretrain.moco.MoCoV2Model` (shared with ContraCAM; DenseCL reuses its
queue and loss): query backbone and projector ``Linear -[BN] -ReLU -Linear`` (``moco.projector_bn``, on
by default as in ContraCAM's variant), their momentum copies as key encoder, and the queue
of keys.
"""
from __future__ import annotations

from harness.pretrain.moco import MoCoV2Model
from harness.core.config_section import ModelRecipe


def build_model(recipe: ModelRecipe) -> MoCoV2Model:
    """The MoCo v2 model of ``recipe``, freshly initialised."""
    return MoCoV2Model(recipe.arch, zero_init_residual=recipe.zero_init_residual, img_size=recipe.img_size,
                       **recipe.section)
