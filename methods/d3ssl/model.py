"""The SoCo-style RoI model of D3SSL: ResNet trunk, RoIAlign head, BYOL heads, EMA teacher.

``RoIEncoder`` pools one vector per box. With ``level="c4"`` (SoCo C4, and the D3SSL
architecture figure) RoIAlign samples the ``layer3`` map (stride 16) at ``roi_size``
(14 at 224 px) and the RoI features go through the trunk's own ``layer4`` before global
average pooling, as in a Faster R-CNN C4 head; with ``level="c5"`` RoIAlign samples the
``layer4`` map (stride 32) and pools it. A view down-scaled by ``s`` uses a RoIAlign
output of ``round(roi_size * s)`` cells (SoCo's small view: 7 instead of 14).

``D3SSLModel.forward(batch)`` consumes what :class:`harness_methods.d3ssl.views.D3SSLBatch`
produces: the teacher encodes the two views ``x1``, ``x2``; the student encodes
``x1``/``x2`` for the base loss (student(x1) -> teacher(x2) and student(x2) ->
teacher(x1)) and every extra view of the de-coupling / de-positioning modules, each
regressed onto the teacher's projection of the same RoIs in its target view(s).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
from torchvision.ops import roi_align

from harness.core.errors import ConfigError
from harness.pretrain.models import build_head, build_resnet, ema_update, feature_dim, frozen_copy, mlp_spec
from harness_methods.d3ssl.losses import combine, roi_byol_loss
from harness_methods.d3ssl.recipe import section

LEVEL_STRIDE = {"c4": 16, "c5": 32}


def rois_from_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """``(B, K, 4)`` boxes -> ``(B*K, 5)`` RoIAlign rows ``(batch index, x1, y1, x2, y2)``."""
    bsz, k = boxes.shape[:2]
    idx = torch.arange(bsz, device=boxes.device, dtype=boxes.dtype).repeat_interleave(k)[:, None]
    return torch.cat([idx, boxes.reshape(-1, 4)], dim=1)


class RoIEncoder(nn.Module):
    """A torchvision ResNet (``fc`` = Identity) that returns one pooled vector per RoI."""

    def __init__(self, arch: str, level: str = "c4", roi_size: int = 14, zero_init_residual: bool = False) -> None:
        super().__init__()
        if level not in LEVEL_STRIDE:
            raise ConfigError(f"d3ssl roi.level must be one of {sorted(LEVEL_STRIDE)}, got {level!r}")
        self.trunk = build_resnet(arch, zero_init_residual=zero_init_residual)
        self.level, self.roi_size = level, int(roi_size)
        self.out_dim = feature_dim(arch)

    def forward(self, images: torch.Tensor, boxes: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """``images`` ``(B, 3, H, W)``, ``boxes`` ``(B, K, 4)`` pixels -> ``(B*K, C)``."""
        net = self.trunk
        x = net.maxpool(net.relu(net.bn1(net.conv1(images))))
        fmap = net.layer3(net.layer2(net.layer1(x)))
        if self.level == "c5":
            fmap = net.layer4(fmap)
        size = max(1, round(self.roi_size * scale))
        rois = rois_from_boxes(boxes.float())  # box coordinates stay float32 under autocast
        feats = roi_align(fmap.float(), rois, output_size=(size, size),
                          spatial_scale=1.0 / LEVEL_STRIDE[self.level], sampling_ratio=-1, aligned=True)
        if self.level == "c4":
            feats = net.layer4(feats)
        return feats.mean(dim=(2, 3))


def cosine_momentum(base: float, step: int, total: int) -> float:
    """BYOL/SoCo target momentum ``1 - (1 - base) * (cos(pi * step / total) + 1) / 2``."""
    if total <= 0:
        return base
    return 1.0 - (1.0 - base) * (math.cos(math.pi * min(step, total) / total) + 1.0) / 2.0


class D3SSLModel(nn.Module):
    """Student (encoder, projector, predictor) and EMA teacher (encoder, projector)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        model = section(cfg, "model")
        roi = section(cfg, "roi")
        arch = str(model.get("arch", "resnet50"))
        hidden, dim = int(model.get("hidden_dim", 4096)), int(model.get("proj_dim", 256))
        self.encoder = RoIEncoder(arch, str(roi.get("level", "c4")), int(roi.get("size", 14)),
                                  bool(model.get("zero_init_residual", False)))
        self.projector_spec = mlp_spec([self.encoder.out_dim, hidden, dim])
        self.predictor_spec = mlp_spec([dim, hidden, dim])
        self.projector = build_head(self.projector_spec)
        self.predictor = build_head(self.predictor_spec)
        self.teacher_encoder = frozen_copy(self.encoder)
        self.teacher_projector = frozen_copy(self.projector)
        self.base_momentum = float(model.get("momentum", 0.99))
        self.weights = {"base": 1.0,
                        "decoupling": float(section(cfg, "decoupling").get("weight", 0.0)),
                        "depositioning": float(section(cfg, "depositioning").get("weight", 0.0))}
        self.momentum = self.base_momentum

    def export_heads(self) -> dict[str, tuple[nn.Module, dict[str, Any]]]:
        """The student heads with their specs. The projector reads a mean-pooled layer4
        vector, as the global heads of MoCo v2 / BYOL do, so contrastive CAM can use it."""
        return {"projector": (self.projector, self.projector_spec),
                "predictor": (self.predictor, self.predictor_spec)}

    def student(self, images: torch.Tensor, boxes: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return self.predictor(self.projector(self.encoder(images, boxes, scale)))

    @torch.no_grad()
    def teacher(self, images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return self.teacher_projector(self.teacher_encoder(images, boxes))

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        b1, b2, valid = batch["boxes1"], batch["boxes2"], batch["valid"]
        bsz, k = valid.shape
        targets = {"x1": self.teacher(batch["x1"], b1).view(bsz, k, -1),
                   "x2": self.teacher(batch["x2"], b2).view(bsz, k, -1)}
        flat_valid = valid.reshape(-1)
        base = 0.5 * (roi_byol_loss(self.student(batch["x1"], b1), targets["x2"].reshape(bsz * k, -1), flat_valid)
                      + roi_byol_loss(self.student(batch["x2"], b2), targets["x1"].reshape(bsz * k, -1), flat_valid))
        terms: dict[str, torch.Tensor] = {"base": base}
        for module, views in batch.get("modules", {}).items():
            parts = []
            for v in views:
                pred = self.student(v["images"], v["boxes"], v["scale"])
                vv = v["valid"].reshape(-1)
                losses = [roi_byol_loss(pred, targets[t][v["index"]].reshape(pred.shape[0], -1), vv)
                          for t in v["targets"]]
                parts.append(torch.stack(losses).mean())
            terms[module] = torch.stack(parts).mean()
        out = {f"loss_{name}": value.detach() for name, value in terms.items()}
        out["loss"] = combine(terms, self.weights)
        return out

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> float:
        """EMA teacher update after optimiser step ``step`` (SoCo's cosine momentum)."""
        self.momentum = cosine_momentum(self.base_momentum, step, total_steps)
        ema_update(self.teacher_encoder, self.encoder, self.momentum)
        ema_update(self.teacher_projector, self.projector, self.momentum)
        return self.momentum

    def backbone(self) -> nn.Module:
        """The student's torchvision ResNet (``fc`` = Identity): what is exported."""
        return self.encoder.trunk
