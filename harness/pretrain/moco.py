"""MoCo v2: query encoder + momentum key encoder + queue of negative keys.

Reusable pieces: :class:`KeyQueue` (a FIFO of L2-normalised keys, gathered over DDP
ranks) and :func:`info_nce` (the InfoNCE loss against a queue), used by DenseCL and
object-aware variants; :class:`MoCoV2Model` (the loop model) with ``embed(x)`` for the
L2-normalised query projection (ContraCAM's CAM scores use it).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.core.config_section import recipe_section
from harness.core.errors import ConfigError
from harness.pretrain import dist
from harness.pretrain.models import build_backbone, build_head, ema_update, feature_dim, frozen_copy, mlp_spec
from harness.pretrain.shuffle_bn import shuffled_forward, step_generator


class KeyQueue(nn.Module):
    """A queue of ``size`` keys of dimension ``dim`` (columns), initialised random-unit."""

    def __init__(self, dim: int, size: int) -> None:
        super().__init__()
        if size < 1:
            raise ConfigError(f"queue size must be >= 1, got {size}")
        self.register_buffer("keys", F.normalize(torch.randn(dim, size), dim=0))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, keys: torch.Tensor) -> None:
        """Enqueue ``keys`` ``(N, dim)`` from every rank (rank order), overwriting the oldest."""
        keys = dist.all_gather_cat(keys.float())
        size = self.keys.shape[1]
        keys = keys[-size:]
        idx = (self.ptr + torch.arange(keys.shape[0], device=keys.device)) % size
        self.keys[:, idx] = keys.t().to(self.keys.dtype)
        self.ptr.copy_((self.ptr + keys.shape[0]) % size)


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE of queries ``q`` ``(N, C)`` with positives ``k`` ``(N, C)`` and negatives
    ``queue`` ``(C, K)`` (all L2-normalised). Returns ``(loss, top-1 accuracy %)``."""
    q, k = q.float(), k.float()
    pos = (q * k).sum(1, keepdim=True)
    neg = q @ queue.float()
    logits = torch.cat([pos, neg], 1) / temperature
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    acc = (logits.argmax(1) == 0).float().mean() * 100
    return F.cross_entropy(logits, labels), acc


class MoCoV2Model(nn.Module):
    """Query encoder (backbone + projector), key encoder (momentum copy), key queue.

    Loss: InfoNCE of query(view1) against key(view2) and the queue; the key encoder
    follows ``k = m*k + (1-m)*q`` after every step. ``shuffle_bn``: the keys are encoded
    under Shuffle BN (:mod:`harness.pretrain.shuffle_bn`; ``shuffle_bn_groups`` BN groups
    in one process, the ranks under DDP). The projector is
    ``Linear(d, hidden) [-BN] -ReLU -Linear(hidden, dim)`` (BN in ContraCAM's variant).
    """

    def __init__(self, arch: str, dim: int = 128, hidden: int | None = None, queue: int = 65536,
                 momentum: float = 0.999, temperature: float = 0.2, projector_bn: bool = True,
                 zero_init_residual: bool = True, shuffle_bn: bool = False, shuffle_bn_groups: int = 8,
                 img_size: int | None = None) -> None:
        super().__init__()
        d = feature_dim(arch)
        self.arch, self.momentum, self.temperature = arch, float(momentum), float(temperature)
        self.shuffle_groups = int(shuffle_bn_groups) if shuffle_bn else 0
        self.backbone = build_backbone(arch, zero_init_residual, img_size)
        self.projector_spec = mlp_spec([d, hidden or d, dim], bn=projector_bn)
        self.projector = build_head(self.projector_spec)
        self.backbone_k = frozen_copy(self.backbone)
        self.projector_k = frozen_copy(self.projector)
        self.queue = KeyQueue(dim, queue)

    @classmethod
    def from_cfg(cls, cfg: dict[str, Any]) -> "MoCoV2Model":
        """From a recipe: ``arch``, ``zero_init_residual`` and the ``moco`` section
        (``dim``, ``hidden``, ``queue``, ``momentum``, ``temperature``, ``projector_bn``,
        ``shuffle_bn``, ``shuffle_bn_groups``)."""
        moco = recipe_section(cfg, "moco", {"dim", "hidden", "queue", "momentum", "temperature", "projector_bn",
                                            "shuffle_bn", "shuffle_bn_groups"})
        return cls(cfg["arch"], zero_init_residual=bool(cfg.get("zero_init_residual", True)),
                   img_size=cfg.get("img_size"), **moco)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised query projection of images ``x``."""
        return F.normalize(self.projector(self.backbone(x)), dim=1)

    @torch.no_grad()
    def embed_key(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """L2-normalised key projection; under Shuffle BN when it is on (``generator``: the
        step's shared generator, which draws the permutation)."""
        def encode(t: torch.Tensor) -> torch.Tensor:
            return F.normalize(self.projector_k(self.backbone_k(t)), dim=1)

        return shuffled_forward(encode, x, self.shuffle_groups, generator) if self.shuffle_groups else encode(x)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        q = self.embed(batch["view1"])
        k = self.embed_key(batch["view2"], step_generator(batch))
        loss, acc = info_nce(q, k, self.queue.keys.clone(), self.temperature)
        self.queue.push(k)
        return {"loss": loss, "acc": acc}

    def after_step(self, step: int, total_steps: int) -> float:
        ema_update(self.backbone_k, self.backbone, self.momentum)
        ema_update(self.projector_k, self.projector, self.momentum)
        return self.momentum

    def export_heads(self) -> dict[str, tuple[nn.Module, dict[str, Any]]]:
        return {"projector": (self.projector, self.projector_spec)}
