"""The imported network: the recipe's public checkpoint converted into a harness backbone.

:func:`harness.convert.convert` finds the backbone by its key layout (MoCo, OpenSelfSup,
mmselfsup, BYOL, Lightning, torchvision ResNets; MoCo v3, DINO, iBOT, MAE ViTs), checks it
strictly against the arch and writes ``backbone.pth`` with its sidecar, and ``heads.pth``
when the file holds a projector.
"""
from __future__ import annotations

from pathlib import Path

from harness.api import BACKBONE_FILE
from harness.convert import ConversionReport, convert
from harness_methods.imported.recipe import ImportedRecipe


def import_backbone(recipe: ImportedRecipe, folder: Path) -> ConversionReport:
    """Convert ``recipe.checkpoint`` into ``folder`` (created when absent) as ``recipe.arch``."""
    folder.mkdir(parents=True, exist_ok=True)
    return convert(recipe.checkpoint, folder / BACKBONE_FILE, recipe.arch)
