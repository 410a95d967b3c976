"""The ORL stage-3 network: object-level BYOL with image, intra-RoI and inter-RoI branches.

One online encoder (ResNet trunk + projector) and its momentum target are shared by the
three branches; each branch has its own predictor. Each branch's loss is the symmetric
BYOL loss ``(2 - 2 cos(q(z1), z2')) + (2 - 2 cos(q(z2), z1'))`` averaged over the batch;
the total is their weighted sum (1:1:1 in the paper). Views are encoded one at a time
(per-view batch-norm statistics, as the reference), RoI patches at their own resolution.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.pretrain.models import build_head, build_resnet, ema_update, feature_dim, frozen_copy, mlp_spec

BRANCHES = ("image", "intra", "inter")


def byol_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``2 - 2 cos`` averaged over the batch."""
    return 2.0 - 2.0 * F.cosine_similarity(pred, target.detach(), dim=1).mean()


def momentum_at(step: int, total_steps: int, base: float, end: float = 1.0) -> float:
    """BYOL's cosine increase of the target momentum from ``base`` to ``end``."""
    frac = step / max(1, total_steps)
    return end - (end - base) * (math.cos(math.pi * frac) + 1.0) / 2.0


class ORLNet(nn.Module):
    """Online/target encoders and the three predictors of ORL.

    ``forward(batch)`` takes normalised views ``image1``/``image2`` ``(N, 3, S, S)``,
    ``intra1``/``intra2`` and ``inter1``/``inter2`` ``(N, 3, s, s)`` and returns
    ``{"loss", "loss_image", "loss_intra", "loss_inter"}`` (weighted terms).
    """

    def __init__(self, arch: str = "resnet50", proj_hidden: int = 4096, out_dim: int = 256,
                 pred_hidden: int = 4096, base_momentum: float = 0.99, end_momentum: float = 1.0,
                 weights: dict[str, float] | None = None) -> None:
        super().__init__()
        self.arch = arch
        self.backbone = build_resnet(arch)
        self.projector_spec = mlp_spec([feature_dim(arch), proj_hidden, out_dim])
        self.predictor_spec = mlp_spec([out_dim, pred_hidden, out_dim])
        self.projector = build_head(self.projector_spec)
        self.predictors = nn.ModuleDict({b: build_head(self.predictor_spec) for b in BRANCHES})
        self.target_backbone = frozen_copy(self.backbone)
        self.target_projector = frozen_copy(self.projector)
        self.base_momentum, self.end_momentum = float(base_momentum), float(end_momentum)
        self.momentum = self.base_momentum
        w = {b: 1.0 for b in BRANCHES}
        w.update(weights or {})
        self.weights = {b: float(w[b]) for b in BRANCHES}

    def online(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))

    @torch.no_grad()
    def target(self, x: torch.Tensor) -> torch.Tensor:
        return self.target_projector(self.target_backbone(x))

    def branch_loss(self, branch: str, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        pred = self.predictors[branch]
        p1, p2 = pred(self.online(v1)), pred(self.online(v2))
        t1, t2 = self.target(v1), self.target(v2)
        return byol_loss(p1, t2) + byol_loss(p2, t1)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for b in BRANCHES:
            out[f"loss_{b}"] = self.weights[b] * self.branch_loss(b, batch[f"{b}1"], batch[f"{b}2"])
        out["loss"] = sum(out[f"loss_{b}"] for b in BRANCHES)
        return out

    def set_momentum(self, step: int, total_steps: int) -> None:
        self.momentum = momentum_at(step, total_steps, self.base_momentum, self.end_momentum)

    @torch.no_grad()
    def update_target(self) -> None:
        ema_update(self.target_backbone, self.backbone, self.momentum)
        ema_update(self.target_projector, self.projector, self.momentum)
