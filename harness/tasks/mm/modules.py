"""Model parts the transfer configs need that mmdet does not ship.

Imported by ``custom_imports`` in ``benchmarks/mmdet/faster-rcnn_r50-c4_ms-24k_voc0712.py``.
"""
from __future__ import annotations

import torch
from mmcv.cnn import build_norm_layer
from mmdet.models.backbones import ResNet
from mmdet.models.roi_heads.shared_heads.res_layer import ResLayer
from mmdet.registry import MODELS


@MODELS.register_module()
class ResLayerOutputNorm(ResLayer):
    """The C4 detector's res5 RoI head with one extra norm layer on its output.

    This is the head of the SSL detection protocol (detectron2's ``Res5ROIHeadsExtraNorm``
    as used by MoCo): with trainable BN everywhere, the res5 output is normalised before
    the box predictor. Its ``layer4.*`` parameters have the backbone file's names.
    """

    def __init__(self, depth: int, stage: int = 3, **kwargs) -> None:
        super().__init__(depth, stage=stage, **kwargs)
        block = ResNet.arch_settings[depth][0]
        channels = 64 * 2**stage * block.expansion
        self.out_norm_name, norm = build_norm_layer(self.norm_cfg, channels, postfix="_out")
        self.add_module(self.out_norm_name, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.out_norm_name)(super().forward(x))
