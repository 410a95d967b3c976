"""A randomly initialised backbone, exported untrained: the floor every method must clear.

One stage builds the torchvision ResNet of the recipe's ``arch`` with the seed of the run
(torchvision's own initialisation; ``zero_init_residual`` as the recipe says), or the timm
ViT of a ViT ``arch`` at the recipe's ``img_size`` (``tiny-vit``: ViT-T at 64 px), and a
projector of MoCo v2's shape, also random, so that tasks needing ``heads.pth`` (CAM
localization) run on it too. BatchNorm keeps its initial statistics (mean 0, variance 1),
so the network is exactly what training starts from, unless the recipe has a
``bn_statistics`` section (``tiny-bnstats``): the running statistics are then measured
on augmented pretraining images, still without any weight update. Light module (no torch).
Its fields are read in :mod:`harness_methods.random_init.recipe`, the network built in
:mod:`harness_methods.random_init.model`.
"""
from __future__ import annotations

from typing import Any

from harness.api import Method, Stage
from harness_methods.random_init.recipe import STAGE_KEYS


class RandomInit(Method):
    """No training: the seeded initialisation exported as the backbone."""

    name = "random"

    def stages(self, cfg: dict[str, Any]) -> list[Stage]:
        return [Stage("init", run="harness_methods.random_init.stages:run", version="1", exports_backbone=True,
                      reads=STAGE_KEYS)]
