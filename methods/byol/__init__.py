"""BYOL (Grill et al. 2020): one stage. ``paper`` is the BYOL paper's LARS recipe,
``paper-contracam`` the SGD variant ContraCAM pretrains; ``tiny`` follows the latter.

Light module (no torch): planning imports it. The model is the engine's BYOL core
:mod:`harness.pretrain.byol` (shared with ORL and ContraCAM), the stage is in
:mod:`harness_methods.byol.stages`.
"""
from __future__ import annotations

from typing import Any

from harness.api import Method, Stage


class BYOL(Method):
    """Online network predicts an EMA target network's projection; exports the online backbone."""

    name = "byol"
    paper = "https://arxiv.org/abs/2006.07733"

    def stages(self, cfg: dict[str, Any]) -> list[Stage]:
        return [Stage("pretrain", run="harness_methods.byol.stages:run", version="1", exports_backbone=True)]
