"""MoCo v2 (Chen et al. 2020), in the variant ContraCAM builds on: one pretraining stage.

Light module (no torch): planning imports it. The model is the engine's MoCo core
:mod:`harness.pretrain.moco` (shared with DenseCL and ContraCAM), the stage function is
in :mod:`harness_methods.mocov2.stages`.
"""
from __future__ import annotations

from typing import Any

from harness.api import Method, Stage


class MoCoV2(Method):
    """Momentum contrast with a queue of negatives; exports the query backbone."""

    name = "mocov2"
    paper = "https://arxiv.org/abs/2003.04297"

    def stages(self, cfg: dict[str, Any]) -> list[Stage]:
        return [Stage("pretrain", run="harness_methods.mocov2.stages:run", version="1", exports_backbone=True)]
