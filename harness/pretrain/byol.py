"""BYOL: online encoder + projector + predictor regress an EMA target's projection.

Reusable: :func:`byol_loss` (``2 - 2 cos`` per pair), :func:`target_momentum` (constant
or cosine-to-1 schedule) and :class:`BYOLModel` with ``project(x)`` /
``embed(x)`` (L2-normalised projector output, the embedding ContraCAM's CAM and ORL's
retrieval use).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.core.config_section import recipe_section
from harness.core.errors import ConfigError
from harness.pretrain.models import build_backbone, build_head, ema_update, feature_dim, frozen_copy, mlp_spec


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean of ``2 - 2 cos(p, z)`` (= squared distance of the unit vectors); ``z`` detached."""
    return (2 - 2 * F.cosine_similarity(p.float(), z.detach().float(), dim=-1)).mean()


def target_momentum(base: float, schedule: str, step: int, total_steps: int) -> float:
    """EMA momentum after optimisation step ``step`` (0-based): ``constant`` = ``base``;
    ``cosine`` = ``1 - (1 - base) * (cos(pi * (step+1) / total) + 1) / 2`` (-> 1 at the end)."""
    if schedule == "constant":
        return base
    if schedule == "cosine":
        return 1 - (1 - base) * (math.cos(math.pi * (step + 1) / total_steps) + 1) / 2
    raise ConfigError(f"byol.momentum_schedule must be 'constant' or 'cosine', got {schedule!r}")


class BYOLModel(nn.Module):
    """Online: backbone -> projector (d-hidden-dim) -> predictor (dim-pred_hidden-dim);
    target: EMA copies of backbone and projector. Symmetric loss over the two views."""

    def __init__(self, arch: str, dim: int = 256, hidden: int = 4096, pred_hidden: int = 4096,
                 momentum: float = 0.996, momentum_schedule: str = "constant",
                 zero_init_residual: bool = True, img_size: int | None = None) -> None:
        super().__init__()
        target_momentum(momentum, momentum_schedule, 0, 1)  # validates the schedule name
        d = feature_dim(arch)
        self.arch, self.momentum, self.momentum_schedule = arch, float(momentum), momentum_schedule
        self.backbone = build_backbone(arch, zero_init_residual, img_size)
        self.projector_spec = mlp_spec([d, hidden, dim], bn=True)
        self.predictor_spec = mlp_spec([dim, pred_hidden, dim], bn=True)
        self.projector = build_head(self.projector_spec)
        self.predictor = build_head(self.predictor_spec)
        self.backbone_t = frozen_copy(self.backbone)
        self.projector_t = frozen_copy(self.projector)

    @classmethod
    def from_cfg(cls, cfg: dict[str, Any]) -> "BYOLModel":
        """From a recipe: ``arch``, ``zero_init_residual`` and the ``byol`` section
        (``dim``, ``hidden``, ``pred_hidden``, ``momentum``, ``momentum_schedule``)."""
        byol = recipe_section(cfg, "byol", {"dim", "hidden", "pred_hidden", "momentum", "momentum_schedule"})
        return cls(cfg["arch"], zero_init_residual=bool(cfg.get("zero_init_residual", True)),
                   img_size=cfg.get("img_size"), **byol)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Online projection (not normalised)."""
        return self.projector(self.backbone(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised online projection (no predictor)."""
        return F.normalize(self.project(x), dim=1)

    @torch.no_grad()
    def target(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector_t(self.backbone_t(x))

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        p1 = self.predictor(self.project(batch["view1"]))
        p2 = self.predictor(self.project(batch["view2"]))
        z1, z2 = self.target(batch["view1"]), self.target(batch["view2"])
        loss = byol_loss(p1, z2) + byol_loss(p2, z1)
        return {"loss": loss}

    def after_step(self, step: int, total_steps: int) -> float:
        m = target_momentum(self.momentum, self.momentum_schedule, step, total_steps)
        ema_update(self.backbone_t, self.backbone, m)
        ema_update(self.projector_t, self.projector, m)
        return m

    def export_heads(self) -> dict[str, tuple[nn.Module, dict[str, Any]]]:
        return {"projector": (self.projector, self.projector_spec),
                "predictor": (self.predictor, self.predictor_spec)}
