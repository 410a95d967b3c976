"""The base models of both pretraining stages, and their Mixup / CutMix forms.

The base model is MoCo v2 (:class:`harness.pretrain.moco.MoCoV2Model`) or BYOL
(:class:`harness.pretrain.byol.BYOLModel`), built from the base recipe. For the Mixup /
CutMix baselines view 1 is mixed in the batch function and the loss follows the mixed
targets (batch keys ``mix_partner`` ``(N,)`` long and ``mix_lam`` ``(N,)`` float):

- MoCo v2: logits of the query against ``[keys of the batch; queue]``;
  ``lam * CE(logits, i) + (1 - lam) * CE(logits, partner(i))``.
- BYOL: ``lam * d(p1_i, z2_i) + (1 - lam) * d(p1_i, z2_partner(i))`` plus
  ``lam * d(p2_i, z1_i) + (1 - lam) * d(p2_partner(i), z1_i)`` with ``d = 2 - 2 cos``.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.pretrain.byol import BYOLModel
from harness.pretrain.shuffle_bn import step_generator
from harness.pretrain.moco import MoCoV2Model


def _weighted(per_sample: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    return (lam.to(per_sample.dtype) * per_sample)


class MixMoCoV2(MoCoV2Model):
    """MoCo v2 whose view 1 is a Mixup / CutMix of two images."""

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        q = self.embed(batch["view1"]).float()
        k = self.embed_key(batch["view2"], step_generator(batch)).float()
        partner, lam = batch["mix_partner"], batch["mix_lam"].float()
        logits = torch.cat([q @ k.t(), q @ self.queue.keys.clone().float()], dim=1) / self.temperature
        own = torch.arange(q.shape[0], device=q.device)
        loss = (_weighted(F.cross_entropy(logits, own, reduction="none"), lam)
                + _weighted(F.cross_entropy(logits, partner, reduction="none"), 1 - lam)).mean()
        self.queue.push(k)
        return {"loss": loss, "acc": (logits.argmax(1) == own).float().mean() * 100}


def _distance(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return 2 - 2 * F.cosine_similarity(p.float(), z.detach().float(), dim=-1)


class MixBYOL(BYOLModel):
    """BYOL whose view 1 is a Mixup / CutMix of two images."""

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        partner, lam = batch["mix_partner"], batch["mix_lam"].float()
        p1 = self.predictor(self.project(batch["view1"]))
        p2 = self.predictor(self.project(batch["view2"]))
        z1, z2 = self.target(batch["view1"]), self.target(batch["view2"])
        loss1 = _weighted(_distance(p1, z2), lam) + _weighted(_distance(p1, z2[partner]), 1 - lam)
        loss2 = _weighted(_distance(p2, z1), lam) + _weighted(_distance(p2[partner], z1), 1 - lam)
        return {"loss": loss1.mean() + loss2.mean()}


def build_model(base: str, cfg: dict[str, Any], mixing: bool = False) -> nn.Module:
    """The base model (``mocov2`` / ``byol``) from its recipe; the mixing form if asked."""
    if base == "mocov2":
        return (MixMoCoV2 if mixing else MoCoV2Model).from_cfg(cfg)
    return (MixBYOL if mixing else BYOLModel).from_cfg(cfg)
