"""Embeddings of stage 2: whole-image projector features and per-RoI backbone features.

- Image features (for kNN retrieval): resize the shorter side to ``resize``, centre-crop
  ``crop``, ImageNet normalisation, backbone -> projector, L2-normalised.
- RoI features (for RoI-pair retrieval): each box is cropped from the full-resolution
  image and resized to ``size x size`` (bilinear, antialiased), backbone avgpool output,
  L2-normalised.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from harness.core.errors import DataError
from harness.data.images import IMAGENET_MEAN, IMAGENET_STD


def read_rgb(path: Path) -> torch.Tensor:
    """uint8 ``(3, H, W)`` RGB tensor of an image file."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        return decode_image(str(path), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError) as exc:
        raise DataError(f"{path}: cannot be decoded as an image ({exc})") from exc


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Images ``(..., 3, H, W)`` with values in 0-255 (any dtype) -> ImageNet-normalised float."""
    x = x.float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)
    return (x - mean) / std


def resize_center_crop(img: torch.Tensor, resize: int, crop: int) -> torch.Tensor:
    """Shorter side to ``resize`` (antialiased bilinear), then a centred ``crop`` square."""
    _, h, w = img.shape
    scale = resize / min(h, w)
    nh, nw = max(crop, round(h * scale)), max(crop, round(w * scale))
    out = F.interpolate(img[None].float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)[0]
    top, left = (nh - crop) // 2, (nw - crop) // 2
    return out[:, top:top + crop, left:left + crop].clamp(0, 255)


def crop_boxes(img: torch.Tensor, boxes: np.ndarray, size: int) -> torch.Tensor:
    """``(n, 3, size, size)`` float crops (0-255) of ``(x, y, w, h)`` boxes of a uint8 image."""
    _, h, w = img.shape
    out = torch.empty((len(boxes), 3, size, size), dtype=torch.float32)
    src = img.float()
    for i, (x, y, bw, bh) in enumerate(np.asarray(boxes, dtype=np.int64)):
        x0, y0 = min(max(int(x), 0), w - 1), min(max(int(y), 0), h - 1)
        x1, y1 = max(min(int(x + bw), w), x0 + 1), max(min(int(y + bh), h), y0 + 1)
        patch = src[:, y0:y1, x0:x1][None]
        out[i] = F.interpolate(patch, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return out.clamp_(0, 255)


class _CenterCropImages(Dataset):
    def __init__(self, paths: Sequence[Path], resize: int, crop: int):
        self.paths, self.resize, self.crop = list(paths), resize, crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return resize_center_crop(read_rgb(self.paths[i]), self.resize, self.crop)


class _RoICrops(Dataset):
    def __init__(self, paths: Sequence[Path], boxes: Sequence[np.ndarray], size: int):
        self.paths, self.boxes, self.size = list(paths), list(boxes), size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return crop_boxes(read_rgb(self.paths[i]), self.boxes[i], self.size)


def _cat_crops(items: list[torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
    return torch.cat(items), [len(t) for t in items]


def _autocast(device: str) -> torch.autocast:
    return torch.autocast("cuda", dtype=torch.float16, enabled=device.startswith("cuda"))


@torch.no_grad()
def image_embeddings(backbone: nn.Module, projector: nn.Module, paths: Sequence[Path], *, resize: int, crop: int,
                     batch_size: int, device: str, workers: int = 0,
                     progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """L2-normalised projector outputs ``(N, d)`` (float32, on ``device``) of centre crops."""
    backbone.eval()
    projector.eval()
    loader = DataLoader(_CenterCropImages(paths, resize, crop), batch_size=batch_size, num_workers=workers)
    out = []
    for batch in loader:
        x = normalize(batch.to(device, non_blocking=True))
        with _autocast(device):
            z = projector(backbone(x))
        out.append(F.normalize(z.float(), dim=1))
        if progress:
            progress(sum(len(o) for o in out), len(paths))
    return torch.cat(out)


@torch.no_grad()
def roi_embeddings(backbone: nn.Module, paths: Sequence[Path], boxes: Sequence[np.ndarray], *, size: int,
                   images_per_batch: int, device: str, workers: int = 0) -> list[torch.Tensor]:
    """Per image, the L2-normalised backbone features ``(n_i, D)`` (float32, CPU) of its RoIs."""
    backbone.eval()
    loader = DataLoader(_RoICrops(paths, boxes, size), batch_size=images_per_batch, num_workers=workers,
                        collate_fn=_cat_crops)
    out: list[torch.Tensor] = []
    for crops, counts in loader:
        x = normalize(crops.to(device, non_blocking=True))
        with _autocast(device):
            feats = backbone(x)
        feats = F.normalize(feats.float().flatten(1), dim=1).cpu()
        out.extend(torch.split(feats, counts))
    return out
