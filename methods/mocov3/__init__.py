"""MoCo v3 (Chen, Xie and He, ICCV 2021), the ViT recipe of momentum contrast: one stage.

Light module (no torch): planning imports it. The model is the engine's MoCo v3 core
:mod:`harness.pretrain.mocov3`; the stage is in :mod:`harness_methods.mocov3.stages`.
"""
from __future__ import annotations

from typing import Any

from harness.api import Method, Stage


class MoCoV3(Method):
    """Queries with a predictor against the momentum encoder's keys of the whole batch; exports the query backbone."""

    name = "mocov3"
    paper = "https://arxiv.org/abs/2104.02057"

    def stages(self, cfg: dict[str, Any]) -> list[Stage]:
        return [Stage("pretrain", run="harness_methods.mocov3.stages:run", version="1", exports_backbone=True)]
