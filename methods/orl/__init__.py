"""ORL: Object-level Representation Learning (Xie et al., NeurIPS 2021), three stages.

1. ``byol``: image-level BYOL with ORL's recipe; exports the backbone and the heads.
2. ``correspondence``: kNN image retrieval, selective-search proposals and RoI-pair
   retrieval with the stage-1 model (files documented in ``SCHEMA.md``).
3. ``orl``: object-level BYOL from random initialisation with image, intra-RoI and
   inter-RoI losses; exports the final backbone.

Recipes: ``tiny`` (CPU, synthetic data), ``paper`` (COCO train2017) and
``paper-cocoplus`` (COCO train2017 + unlabeled2017). Each stage reads only its part of the
recipe (see :mod:`harness_methods.orl.recipe`), so changing stage 3 reuses stages 1 and 2. This
module imports nothing heavy.
"""
from __future__ import annotations

from typing import Any

from harness.api import Method, Stage
from harness_methods.orl.recipe import SHARED_KEYS


class ORL(Method):
    name = "orl"
    paper = "https://arxiv.org/abs/2106.11952"

    def stages(self, cfg: dict[str, Any]) -> list[Stage]:
        return [
            Stage("byol", run="harness_methods.orl.stages.byol:run", version="1", reads=SHARED_KEYS + ("byol",)),
            Stage("correspondence", run="harness_methods.orl.stages.correspondence:run", version="1",
                  reads=("data", "correspondence")),
            Stage("orl", run="harness_methods.orl.stages.orl:run", version="1", exports_backbone=True,
                  reads=SHARED_KEYS + ("orl",)),
        ]
