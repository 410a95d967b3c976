"""ContraCAM (Mo et al., NeurIPS 2021): object-aware contrastive learning.

Stages per ``variant`` (recipe key; see :mod:`harness_methods.contracam.recipe`):

- ``crop`` / ``bgmix`` / ``crop+bgmix``: ``pretrain`` (vanilla MoCo v2 or BYOL) ->
  ``cam_boxes`` (ContraCAM boxes and masks of every pretraining image) ->
  ``objaware_pretrain`` (from scratch with object-aware crop and/or background mixup;
  exports the backbone);
- ``oracle``: ``gt_boxes`` (COCO ground-truth boxes) -> ``objaware_pretrain``;
- ``mixup`` / ``cutmix`` (baselines): ``objaware_pretrain`` only.

The first stages read only their part of the recipe (``Stage.reads``): changing the
variant, ``bgmix`` or ``objaware`` settings reuses the vanilla pretraining.

Light module (no torch): planning imports it.
"""
from __future__ import annotations

from typing import Any

from harness.api import Method, Stage
from harness_methods.contracam.recipe import CAM_READS, ORACLE_READS, ContraCamRecipe, vanilla_reads


class ContraCAM(Method):
    """Vanilla pretraining, ContraCAM boxes/masks, object-aware pretraining."""

    name = "contracam"
    paper = "https://arxiv.org/abs/2108.00049"

    def stages(self, cfg: dict[str, Any]) -> list[Stage]:
        recipe = ContraCamRecipe.from_recipe(cfg)
        stages = []
        if recipe.uses_cam:
            stages += [Stage("pretrain", run="harness_methods.contracam.stages.pretrain:run", version="1",
                             reads=vanilla_reads(cfg)),
                       Stage("cam_boxes", run="harness_methods.contracam.stages.cam:run", version="1", reads=CAM_READS)]
        elif recipe.variant == "oracle":
            stages.append(Stage("gt_boxes", run="harness_methods.contracam.stages.oracle:run", version="1",
                                reads=ORACLE_READS))
        stages.append(Stage("objaware_pretrain", run="harness_methods.contracam.stages.objaware:run", version="1",
                            exports_backbone=True))
        return stages
