"""Model parts for dense transfer from a Vision Transformer backbone file.

Imported by ``custom_imports`` in the ViT configs (``benchmarks/mmdet/mask-rcnn_vit-b16_simplefpn_lsj-100e_coco.py``,
``benchmarks/mmseg/upernet_vit-b16_mln_8xb2-160k_ade20k-512x512.py``):

- ``HarnessViT`` (mmdet and mmseg backbone): the timm ViT of the backbone file
  (:func:`harness.core.vit.build_vit`), returning the patch-token maps of ``out_indices``
  as ``(N, C, H/16, W/16)``. Its init loads the file strictly (weights-only, exact keys), so
  no weight is left at random init; its parameters are ``vit.<backbone file key>``.
- ``LN2d``: LayerNorm over the channels of a map, the norm of ViTDet's pyramid and heads.
- ``SimpleFeaturePyramid`` (mmdet neck): ViTDet's pyramid from the last map alone, strides
  4, 8, 16, 32 by deconvolution / identity / max-pooling, each followed by a 1x1 and a
  3x3 convolution with channel LayerNorm, and a stride-64 level by max-pooling the last.
- ``ViTLayerDecayOptimWrapperConstructor``: layer-wise learning-rate decay (block ``i`` of
  ``L`` gets ``decay ** (L - i)``; patch / position embedding and class token
  ``decay ** (L + 1)``; everything after the backbone 1), no weight decay on 1-d parameters
  (norms, biases) nor on the position embedding and class token, as ViTDet trains.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from mmengine.model import BaseModule
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from harness.core.errors import CheckpointError
from harness.core.vit import norm_map

NO_DECAY = ("pos_embed", "cls_token")


class HarnessViT(BaseModule):
    """A timm ViT from a backbone file as a detector / segmenter backbone."""

    def __init__(self, arch: str, img_size: int, out_indices: Sequence[int] = (11,), final_norm: bool = False,
                 drop_path_rate: float = 0.0, init_cfg: dict | None = None) -> None:
        from harness.core.vit import build_vit

        super().__init__(init_cfg=init_cfg)
        self.arch = arch
        self.vit = build_vit(arch, img_size, drop_path_rate=drop_path_rate)
        depth = len(self.vit.blocks)
        if not out_indices or any(not 0 <= i < depth for i in out_indices):
            raise CheckpointError(f"HarnessViT: out_indices {list(out_indices)} must be blocks of 0..{depth - 1}")
        self.out_indices = tuple(int(i) for i in out_indices)
        self.final_norm = final_norm

    def init_weights(self) -> None:
        """The backbone file's tensors, loaded strictly (``init_cfg`` Pretrained names it)."""
        from harness.core.checkpoints import load_backbone

        cfg = self.init_cfg or {}
        if cfg.get("type") != "Pretrained":
            raise CheckpointError(f"HarnessViT: init_cfg must be Pretrained with the backbone file, got {cfg!r}")
        source = load_backbone(Path(cfg["checkpoint"]), self.arch)
        self.vit.load_state_dict(source.state_dict(), strict=True)
        self._is_init = True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps = self.vit.forward_intermediates(x, indices=list(self.out_indices), norm=False, output_fmt="NCHW",
                                              intermediates_only=True)
        if self.final_norm and self.out_indices[-1] == len(self.vit.blocks) - 1:
            maps[-1] = norm_map(self.vit.norm, maps[-1])
        return tuple(maps)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an ``(N, C, H, W)`` map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return norm_map(super().forward, x)


def _scale_branch(width: int, scale: float) -> nn.Module:
    if scale == 4.0:
        return nn.Sequential(nn.ConvTranspose2d(width, width // 2, 2, stride=2), LayerNorm2d(width // 2), nn.GELU(),
                             nn.ConvTranspose2d(width // 2, width // 4, 2, stride=2))
    if scale == 2.0:
        return nn.ConvTranspose2d(width, width // 2, 2, stride=2)
    if scale == 1.0:
        return nn.Identity()
    if scale == 0.5:
        return nn.MaxPool2d(2, stride=2)
    raise ValueError(f"SimpleFeaturePyramid: scale factors are 4, 2, 1 or 0.5, got {scale!r}")


def _branch_width(width: int, scale: float) -> int:
    return {4.0: width // 4, 2.0: width // 2}.get(scale, width)


class SimpleFeaturePyramid(BaseModule):
    """ViTDet's feature pyramid from one stride-16 map (the last of the backbone's outputs)."""

    def __init__(self, in_channels: int, out_channels: int = 256, scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
                 top_pool: bool = True, init_cfg: dict | list | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.branches = nn.ModuleList()
        for scale in scale_factors:
            inner = _branch_width(in_channels, float(scale))
            self.branches.append(nn.Sequential(
                _scale_branch(in_channels, float(scale)),
                nn.Conv2d(inner, out_channels, 1, bias=False), LayerNorm2d(out_channels),
                nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), LayerNorm2d(out_channels)))
        self.top_pool = top_pool

    def forward(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        outs = [branch(inputs[-1]) for branch in self.branches]
        if self.top_pool:
            outs.append(nn.functional.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)


def layer_id(name: str, depth: int) -> int:
    """The decay layer of parameter ``name``: 0 embeddings, ``i + 1`` block ``i``, ``depth + 1`` the rest."""
    if not name.startswith("backbone."):
        return depth + 1
    part = name.split(".")[2] if name.startswith("backbone.vit.") else ""
    if part in ("cls_token", "pos_embed", "patch_embed", "reg_token"):
        return 0
    if part == "blocks":
        return int(name.split(".")[3]) + 1
    return depth + 1


class ViTLayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise lr decay for a ``HarnessViT`` model; ``paramwise_cfg`` holds
    ``layer_decay_rate`` and ``num_layers`` (the ViT's depth)."""

    def add_params(self, params: list[dict], module: nn.Module, prefix: str = "", **kwargs: Any) -> None:
        rate = float(self.paramwise_cfg["layer_decay_rate"])
        depth = int(self.paramwise_cfg["num_layers"])
        for name, param in module.named_parameters(prefix=prefix):
            if not param.requires_grad:
                continue
            no_decay = param.ndim == 1 or name.split(".")[-1] in NO_DECAY
            params.append({"params": [param], "lr": self.base_lr * rate ** (depth + 1 - layer_id(name, depth)),
                           "weight_decay": 0.0 if no_decay else self.base_wd})


def _register() -> None:
    from mmdet.registry import MODELS as DET_MODELS
    from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
    from mmengine.registry import MODELS
    from mmseg.registry import MODELS as SEG_MODELS

    MODELS.register_module("LN2d", module=LayerNorm2d, force=True)  # norm_cfg type of the ViTDet heads
    DET_MODELS.register_module(module=HarnessViT, force=True)
    DET_MODELS.register_module(module=SimpleFeaturePyramid, force=True)
    SEG_MODELS.register_module(module=HarnessViT, force=True)
    OPTIM_WRAPPER_CONSTRUCTORS.register_module(module=ViTLayerDecayOptimWrapperConstructor, force=True)


_register()
