"""The ORL stage-3 network: object-level BYOL with image, intra-RoI and inter-RoI branches.

One online encoder (ResNet trunk + projector) and its momentum target are shared by the
three branches; each branch has its own predictor. Each branch's loss is BYOL's symmetric
``(2 - 2 cos(q(z1), z2')) + (2 - 2 cos(q(z2), z1'))`` (batch means); the total is their
weighted sum (1:1:1 in the paper). Views are encoded one at a time (per-view batch-norm
statistics, as the reference), RoI patches at their own resolution. The target momentum
rises from ``base_momentum`` to 1 on BYOL's cosine schedule.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.pretrain.models import build_head, build_resnet, ema_update, feature_dim, frozen_copy, mlp_spec
from harness.pretrain.byol import byol_loss, target_momentum

BRANCHES = ("image", "intra", "inter")


class ORLNet(nn.Module):
    """Online/target encoders and the three predictors of ORL.

    ``forward(batch)`` takes normalised views ``image1``/``image2`` ``(N, 3, S, S)``,
    ``intra1``/``intra2`` and ``inter1``/``inter2`` ``(N, 3, s, s)`` and returns
    ``{"loss", "loss_image", "loss_intra", "loss_inter"}`` (weighted terms).
    """

    def __init__(self, arch: str = "resnet50", proj_hidden: int = 4096, out_dim: int = 256, pred_hidden: int = 4096,
                 base_momentum: float = 0.99, weights: dict[str, float] | None = None,
                 zero_init_residual: bool = False) -> None:
        super().__init__()
        self.arch = arch
        self.backbone = build_resnet(arch, zero_init_residual)
        self.projector_spec = mlp_spec([feature_dim(arch), proj_hidden, out_dim])
        self.predictor_spec = mlp_spec([out_dim, pred_hidden, out_dim])
        self.projector = build_head(self.projector_spec)
        self.predictors = nn.ModuleDict({b: build_head(self.predictor_spec) for b in BRANCHES})
        self.backbone_t = frozen_copy(self.backbone)
        self.projector_t = frozen_copy(self.projector)
        self.base_momentum = float(base_momentum)
        w = {b: 1.0 for b in BRANCHES}
        w.update(weights or {})
        self.weights = {b: float(w[b]) for b in BRANCHES}

    def online(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))

    @torch.no_grad()
    def target(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector_t(self.backbone_t(x))

    def branch_loss(self, branch: str, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        pred = self.predictors[branch]
        p1, p2 = pred(self.online(v1)), pred(self.online(v2))
        t1, t2 = self.target(v1), self.target(v2)
        return byol_loss(p1, t2) + byol_loss(p2, t1)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        out = {f"loss_{b}": self.weights[b] * self.branch_loss(b, batch[f"{b}1"], batch[f"{b}2"]) for b in BRANCHES}
        out["loss"] = out["loss_image"] + out["loss_intra"] + out["loss_inter"]
        return out

    def after_step(self, step: int, total_steps: int) -> float:
        """EMA update of the target after optimisation step ``step`` (cosine momentum -> 1)."""
        m = target_momentum(self.base_momentum, "cosine", step, total_steps)
        ema_update(self.backbone_t, self.backbone, m)
        ema_update(self.projector_t, self.projector, m)
        return m

    def export_heads(self) -> dict[str, tuple[nn.Module, dict[str, Any]]]:
        heads = {"projector": (self.projector, self.projector_spec)}
        heads.update({f"predictor_{b}": (self.predictors[b], self.predictor_spec) for b in BRANCHES})
        return heads
