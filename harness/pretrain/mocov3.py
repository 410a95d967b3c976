"""MoCo v3 (Chen, Xie and He, ICCV 2021): query encoder with a predictor, a momentum key
encoder, and each query contrasted with every key of the global batch (no queue).

Loss: ``ctr(q1, k2) + ctr(q2, k1)``, ``ctr(q, k) = 2 T * CE(q k^T / T, own key)`` with the
keys all-gathered over DDP ranks; the key encoder follows ``k = m k + (1 - m) q`` with ``m``
on a cosine schedule from ``momentum`` to 1. Projector ``d-hidden-hidden-dim`` and
predictor ``dim-hidden-dim``, BN on every hidden layer and after the last. With a ViT
trunk, ``freeze_patch_embed`` keeps its random patch projection fixed (the paper's
stability trick).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as tdist
import torch.nn as nn
import torch.nn.functional as F

from harness.core.config_section import recipe_section
from harness.core.errors import ConfigError
from harness.pretrain import dist
from harness.pretrain.byol import target_momentum
from harness.pretrain.models import build_backbone, build_head, ema_update, feature_dim, frozen_copy, mlp_spec


def batch_contrast(q: torch.Tensor, k: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``2 T * CE`` of L2-normalised queries ``q`` against every rank's keys ``k``, each
    query's positive its own key. Returns ``(loss, top-1 accuracy %)``."""
    q, k = q.float(), k.float()
    keys = dist.all_gather_cat(k)
    offset = tdist.get_rank() * q.shape[0] if dist.is_distributed() else 0
    logits = q @ keys.t() / temperature
    labels = torch.arange(q.shape[0], device=q.device) + offset
    loss = F.cross_entropy(logits, labels) * 2 * temperature
    acc = (logits.argmax(1) == labels).float().mean() * 100
    return loss, acc


class MoCoV3Model(nn.Module):
    """The loop model of MoCo v3 (see the module docstring)."""

    def __init__(self, arch: str, dim: int = 256, hidden: int = 4096, momentum: float = 0.99,
                 temperature: float = 0.2, freeze_patch_embed: bool = False, zero_init_residual: bool = False,
                 img_size: int | None = None) -> None:
        super().__init__()
        d = feature_dim(arch)
        self.momentum, self.temperature = float(momentum), float(temperature)
        self.backbone = build_backbone(arch, zero_init_residual, img_size)
        if freeze_patch_embed:
            if not hasattr(self.backbone, "patch_embed"):
                raise ConfigError(f"mocov3.freeze_patch_embed needs a ViT trunk; {arch} has no patch embedding")
            for p in self.backbone.patch_embed.parameters():
                p.requires_grad_(False)
        self.projector_spec = mlp_spec([d, hidden, hidden, dim], bn=True, last_bn=True)
        self.predictor_spec = mlp_spec([dim, hidden, dim], bn=True, last_bn=True)
        self.projector = build_head(self.projector_spec)
        self.predictor = build_head(self.predictor_spec)
        self.backbone_k = frozen_copy(self.backbone)
        self.projector_k = frozen_copy(self.projector)

    @classmethod
    def from_cfg(cls, cfg: dict[str, Any]) -> "MoCoV3Model":
        """From a recipe: ``arch``, ``img_size`` (a ViT), ``zero_init_residual`` and the
        ``mocov3`` section (``dim``, ``hidden``, ``momentum``, ``temperature``, ``freeze_patch_embed``)."""
        section = recipe_section(cfg, "mocov3", {"dim", "hidden", "momentum", "temperature", "freeze_patch_embed"})
        return cls(cfg["arch"], zero_init_residual=bool(cfg.get("zero_init_residual", False)),
                   img_size=cfg.get("img_size"), **section)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised query projection (no predictor) of images ``x``."""
        return F.normalize(self.projector(self.backbone(x)), dim=1)

    def query(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.predictor(self.projector(self.backbone(x))), dim=1)

    @torch.no_grad()
    def key(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projector_k(self.backbone_k(x)), dim=1)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        q1, q2 = self.query(batch["view1"]), self.query(batch["view2"])
        k1, k2 = self.key(batch["view1"]), self.key(batch["view2"])
        loss_a, acc = batch_contrast(q1, k2, self.temperature)
        loss_b, _ = batch_contrast(q2, k1, self.temperature)
        return {"loss": loss_a + loss_b, "acc": acc}

    def after_step(self, step: int, total_steps: int) -> float:
        m = target_momentum(self.momentum, "cosine", step, total_steps)
        ema_update(self.backbone_k, self.backbone, m)
        ema_update(self.projector_k, self.projector, m)
        return m

    def export_heads(self) -> dict[str, tuple[nn.Module, dict[str, Any]]]:
        return {"projector": (self.projector, self.projector_spec),
                "predictor": (self.predictor, self.predictor_spec)}
