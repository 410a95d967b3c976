"""Frozen-backbone feature maps for the dense probes: images in, stage outputs out.

An image is resized so that its shorter side is ``short_side`` (aspect kept), normalised
with the ImageNet statistics and run through the frozen backbone in eval mode;
:func:`feature_maps` returns the requested levels (``layer1`` .. ``layer4``):

- a torchvision ResNet: the stage outputs (strides 4, 8, 16, 32);
- a timm Vision Transformer: the patch tokens after the last block of each quarter of the
  depth (:func:`harness.core.vit.stage_blocks`; blocks 2, 5, 8, 11 of 12 for ``layer1`` ..
  ``layer4``), each passed through the final layer norm as DINOv2's multi-layer linear
  segmentation does, as ``(N, C, H/p, W/p)`` maps at the patch stride ``p``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator, Sequence, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from harness.core import vit
from harness.core.errors import ConfigError, DataError
from harness.core.config_section import checked_section, field_names
from harness.data.images import IMAGENET_MEAN, IMAGENET_STD

T = TypeVar("T")
STAGES = ("layer1", "layer2", "layer3", "layer4")
STRIDES = {"layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}


def check_stages(levels: Sequence[str], where: str) -> list[str]:
    bad = [lv for lv in levels if lv not in STAGES]
    if bad or not levels:
        raise ConfigError(f"{where}: levels must be a non-empty list of {STAGES}, got {list(levels)!r}")
    return list(levels)


@dataclasses.dataclass(frozen=True)
class DenseProbeConfig:
    """The keys every frozen dense probe shares; each probe's config adds its own."""

    dataset: str
    short_side: int
    levels: tuple[str, ...]
    l2_grid: dict[str, Any]
    max_iter: int
    tol: float
    val_size: float
    split_seed: int


def probe_config(cls: type[T], d: dict[str, Any], task: str, datasets: Sequence[str]) -> T:
    """A frozen dense-probe config dataclass from its task config: exactly its fields,
    a known dataset, known backbone stages."""
    names = field_names(cls)
    d = checked_section(d, names, f"{task} config", required=names)
    if d["dataset"] not in datasets:
        raise ConfigError(f"{task}: dataset {d['dataset']!r} is not one of {tuple(datasets)}")
    return cls(**{**d, "levels": tuple(check_stages(d["levels"], task))})


def load_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except OSError as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from exc


def resized_size(w: int, h: int, short_side: int) -> tuple[int, int]:
    """``(w, h)`` scaled so that the shorter side is ``short_side``."""
    s = short_side / min(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def to_tensor(im: Image.Image, short_side: int) -> torch.Tensor:
    """Resized (bilinear), normalised ``(3, H, W)`` float tensor."""
    im = im.resize(resized_size(*im.size, short_side), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return (x - mean) / std


def level_stride(net: torch.nn.Module, level: str) -> int:
    """Input pixels per cell of the ``level`` map of ``net``."""
    return vit.patch_size(net) if vit.is_vit_model(net) else STRIDES[level]


@torch.no_grad()
def feature_maps(net: torch.nn.Module, x: torch.Tensor, levels: Sequence[str]) -> dict[str, torch.Tensor]:
    """The requested levels of a ResNet or a ViT (see the module docstring) for ``x`` ``(N, 3, H, W)``."""
    if vit.is_vit_model(net):
        blocks = vit.stage_blocks(len(net.blocks))
        indices = [blocks[STAGES.index(lv)] for lv in levels]
        maps = net.forward_intermediates(x, indices=indices, norm=True, stop_early=True, output_fmt="NCHW",
                                         intermediates_only=True)
        return dict(zip(levels, maps))
    return stage_maps(net, x, levels)


@torch.no_grad()
def stage_maps(net: torch.nn.Module, x: torch.Tensor, levels: Sequence[str]) -> dict[str, torch.Tensor]:
    """The outputs of the requested stages of a torchvision ResNet for ``x`` ``(N, 3, H, W)``."""
    h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    out: dict[str, torch.Tensor] = {}
    for name in STAGES:
        h = getattr(net, name)(h)
        if name in levels:
            out[name] = h
        if all(lv in out for lv in levels):
            break
    return out


def grid_features(maps: dict[str, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """Stage outputs bilinearly resampled to one ``size`` grid and concatenated: ``(N, C, h, w)``."""
    parts = [F.interpolate(m.float(), size=size, mode="bilinear", align_corners=False) for m in maps.values()]
    return torch.cat(parts, dim=1)


def image_batches(paths: Sequence[Path], short_side: int, batch_size: int
                  ) -> Iterator[tuple[list[int], torch.Tensor, list[tuple[int, int]]]]:
    """``(indices, images (B, 3, H, W), original (w, h) sizes)`` batches of the images in
    order, a batch holding consecutive images that resize to the same size."""
    pending: list[tuple[int, torch.Tensor, tuple[int, int]]] = []
    for i, path in enumerate(paths):
        im = load_rgb(path)
        x = to_tensor(im, short_side)
        if pending and (len(pending) == batch_size or pending[0][1].shape != x.shape):
            yield [p[0] for p in pending], torch.stack([p[1] for p in pending]), [p[2] for p in pending]
            pending = []
        pending.append((i, x, im.size))
    if pending:
        yield [p[0] for p in pending], torch.stack([p[1] for p in pending]), [p[2] for p in pending]
