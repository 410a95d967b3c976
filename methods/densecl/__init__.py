"""DenseCL (Wang et al. 2021): MoCo v2 plus a dense contrastive loss on the C5 grid.

Light module (no torch): planning imports it. The model lives in
:mod:`harness_methods.densecl.model`, the stage in :mod:`harness_methods.densecl.stages`.
"""
from __future__ import annotations

from typing import Any

from harness.api import Method, Stage


class DenseCL(Method):
    """Global + dense InfoNCE (0.5 / 0.5); exports the query backbone."""

    name = "densecl"
    paper = "https://arxiv.org/abs/2011.09157"

    def stages(self, cfg: dict[str, Any]) -> list[Stage]:
        return [Stage("pretrain", run="harness_methods.densecl.stages:run", version="1", exports_backbone=True)]
