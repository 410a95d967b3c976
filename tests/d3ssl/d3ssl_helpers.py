"""Shared builders of the D3SSL tests: a minimal recipe and a hand-made raw batch."""
from __future__ import annotations

import torch

from harness.pretrain.data import RawBatch, collate

SIZE = 32


def small_cfg() -> dict:
    """A minimal D3SSL recipe (both modules on) at 32 px."""
    return {
        "model": {"arch": "resnet18", "hidden_dim": 32, "proj_dim": 16, "momentum": 0.9},
        "roi": {"level": "c4", "size": 2, "per_image": 3, "jitter": 0.1},
        "augment": {"blur_kernel": 3, "view1": {"size": SIZE, "scale": [1.0, 1.0], "ratio": [0.1, 10.0]},
                    "view2": {"size": SIZE, "scale": [0.6, 1.0]}},
        "base_cutout": {"prob": 0.5, "ratio": [0.1, 0.3]},
        "decoupling": {"enabled": True, "weight": 0.3, "sample_ratio": 0.5, "invert_half": True,
                       "views": [{"source": "x1", "cutout": True, "targets": ["x2"]},
                                 {"source": "x2", "cutout": True, "small": True, "targets": ["x1"]}]},
        "depositioning": {"enabled": True, "weight": 0.3, "sample_ratio": 0.5,
                          "views": [{"source": "x2", "cutout": True, "background": "moved", "targets": ["x1", "x2"]}]},
        "cutout": {"mode": "rcc", "ratio": [0.2, 0.6]},
        "small_view": {"scale": 0.5, "canvas": 0.75},
    }


def raw_batch(n: int = 4, boxes_per_image: int = 2) -> RawBatch:
    gen = torch.Generator().manual_seed(0)
    items = []
    for i in range(n):
        img = (torch.rand(3, 40, 48, generator=gen) * 255).to(torch.uint8)
        boxes = [[0.1 + 0.1 * k, 0.1, 0.4 + 0.1 * k, 0.5] for k in range(boxes_per_image)]
        items.append({"image": img, "index": i, "meta": {"boxes": boxes}})
    return collate(items)
