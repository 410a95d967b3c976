"""DenseCL: a global MoCo branch and a dense branch on the backbone's C5 grid.

Heads (as in WXinlong/DenseCL): global ``Linear(d, d) -ReLU -Linear(d, dim)`` on the
pooled C5 features; dense ``Conv1x1(d, d) -ReLU -Conv1x1(d, dim)`` on the C5 map. Each
query grid cell's positive is the key grid cell whose (normalised) *backbone* feature is
most similar; dense negatives come from a second queue that stores the spatially
averaged dense keys. Loss = ``(1 - w) * global + w * dense`` with ``w = loss_lambda``.
``shuffle_bn``: the key encoder runs under Shuffle BN as in the reference code
(:mod:`harness.pretrain.shuffle_bn`).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.core.errors import ConfigError
from harness.pretrain.models import (build_head, build_resnet, conv_mlp_spec, ema_update, feature_dim, frozen_copy,
                                     mlp_spec, resnet_c5)
from harness.pretrain.shuffle_bn import shuffled_forward, step_generator
from harness.pretrain.moco import KeyQueue, info_nce
from harness_methods.densecl.recipe import parse


def dense_positive_index(q_feat: torch.Tensor, k_feat: torch.Tensor) -> torch.Tensor:
    """For each query cell, the key cell with the most similar backbone feature.

    ``q_feat``, ``k_feat``: ``(N, C, S)`` L2-normalised over C. Returns ``(N, S)`` indices.
    """
    return torch.bmm(q_feat.transpose(1, 2), k_feat).argmax(dim=2)


class DenseCLModel(nn.Module):
    """Query encoder (backbone, global head, dense head), momentum key encoder, two queues."""

    def __init__(self, arch: str, dim: int = 128, hidden: int | None = None, queue: int = 65536,
                 momentum: float = 0.999, temperature: float = 0.2, loss_lambda: float = 0.5,
                 zero_init_residual: bool = False, shuffle_bn: bool = False, shuffle_bn_groups: int = 8) -> None:
        super().__init__()
        if not 0.0 <= loss_lambda <= 1.0:
            raise ConfigError(f"densecl.loss_lambda must be in [0, 1], got {loss_lambda}")
        d = feature_dim(arch)
        h = hidden or d
        self.arch, self.momentum, self.temperature, self.loss_lambda = arch, momentum, temperature, loss_lambda
        self.shuffle_groups = int(shuffle_bn_groups) if shuffle_bn else 0
        self.backbone = build_resnet(arch, zero_init_residual)
        self.projector_spec = mlp_spec([d, h, dim], bn=False)
        self.dense_spec = conv_mlp_spec([d, h, dim])
        self.projector = build_head(self.projector_spec)
        self.dense_head = build_head(self.dense_spec)
        self.backbone_k = frozen_copy(self.backbone)
        self.projector_k = frozen_copy(self.projector)
        self.dense_head_k = frozen_copy(self.dense_head)
        self.queue = KeyQueue(dim, queue)
        self.dense_queue = KeyQueue(dim, queue)

    @classmethod
    def from_cfg(cls, cfg: dict[str, Any]) -> "DenseCLModel":
        """From a recipe, as :func:`harness_methods.densecl.recipe.parse` reads it."""
        recipe = parse(cfg)
        return cls(recipe.arch, zero_init_residual=recipe.zero_init_residual, **recipe.section)

    @staticmethod
    def _encode(backbone: nn.Module, projector: nn.Module, dense_head: nn.Module, x: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(global emb (N,dim), dense emb (N,dim,S), backbone grid (N,C,S), pooled dense emb (N,dim)),
        all L2-normalised over channels."""
        c5 = resnet_c5(backbone, x)
        g = F.normalize(projector(c5.mean(dim=(2, 3))), dim=1)
        dense = dense_head(c5).flatten(2)
        pooled = F.normalize(dense.mean(dim=2), dim=1)
        return g, F.normalize(dense, dim=1), F.normalize(c5.flatten(2), dim=1), pooled

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        q, q_dense, q_feat, _ = self._encode(self.backbone, self.projector, self.dense_head, batch["view1"])
        with torch.no_grad():
            def encode_key(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
                return self._encode(self.backbone_k, self.projector_k, self.dense_head_k, x)

            if self.shuffle_groups:
                k, k_dense, k_feat, k_pooled = shuffled_forward(encode_key, batch["view2"], self.shuffle_groups,
                                                                step_generator(batch))
            else:
                k, k_dense, k_feat, k_pooled = encode_key(batch["view2"])
            match = dense_positive_index(q_feat.float(), k_feat.float())
            k_pos = k_dense.gather(2, match.unsqueeze(1).expand(-1, k_dense.shape[1], -1))
        loss_global, acc = info_nce(q, k, self.queue.keys.clone(), self.temperature)
        dim = q_dense.shape[1]
        loss_dense, acc_dense = info_nce(q_dense.transpose(1, 2).reshape(-1, dim),
                                         k_pos.transpose(1, 2).reshape(-1, dim),
                                         self.dense_queue.keys.clone(), self.temperature)
        self.queue.push(k)
        self.dense_queue.push(k_pooled)
        loss = (1 - self.loss_lambda) * loss_global + self.loss_lambda * loss_dense
        return {"loss": loss, "loss_global": loss_global.detach(), "loss_dense": loss_dense.detach(),
                "acc": acc, "acc_dense": acc_dense}

    def after_step(self, step: int, total_steps: int) -> float:
        for target, online in ((self.backbone_k, self.backbone), (self.projector_k, self.projector),
                               (self.dense_head_k, self.dense_head)):
            ema_update(target, online, self.momentum)
        return self.momentum

    def export_heads(self) -> dict[str, tuple[nn.Module, dict[str, Any]]]:
        return {"projector": (self.projector, self.projector_spec), "dense_head": (self.dense_head, self.dense_spec)}
