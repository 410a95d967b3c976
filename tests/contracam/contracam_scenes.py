"""Small synthetic scenes and models shared by the ContraCAM tests."""
from __future__ import annotations

import torch
import torchvision
from torch import nn


def tiny_model(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """A randomly initialised ResNet-18 trunk (``fc`` removed) and a MoCo v2 projector."""
    torch.manual_seed(seed)
    net = torchvision.models.resnet18()
    net.fc = nn.Identity()
    proj = nn.Sequential(nn.Linear(512, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 32))
    return net, proj


def object_scenes(n: int = 12, size: int = 64, obj: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-contrast noise backgrounds, each with one distinctive coloured, textured square
    at a random place; returns normalised images ``(n, 3, S, S)`` and boolean object masks
    ``(n, 1, S, S)``."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, size, size, generator=g) * 0.1
    masks = torch.zeros(n, 1, size, size, dtype=torch.bool)
    for i in range(n):
        y0, x0 = torch.randint(0, size - obj, (2,), generator=g).tolist()
        colour = torch.randn(3, 1, 1, generator=g) * 2
        images[i, :, y0:y0 + obj, x0:x0 + obj] = colour + torch.randn(3, obj, obj, generator=g) * 0.5
        masks[i, :, y0:y0 + obj, x0:x0 + obj] = True
    return images, masks


def mean_iou(pred: torch.Tensor, gt: torch.Tensor) -> float:
    """Mean per-image IoU of boolean maps (1 when both are empty)."""
    inter = (pred & gt).flatten(1).sum(1).float()
    union = (pred | gt).flatten(1).sum(1).float()
    return float(torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union)).mean())
