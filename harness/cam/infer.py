"""Running ContraCAM on image files: model loading, preprocessing, batched masks.

A CAM needs the projection head as well as the backbone. It is read from ``heads.pth``
(+ ``heads.json``, written by :func:`harness.core.heads.save_heads`) in the same folder
as ``backbone.pth``; the head named ``projector`` is used (for BYOL the projector, not
the predictor).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from harness.core.errors import CheckpointError
from harness.data.images import IMAGENET_MEAN, IMAGENET_STD
from harness.cam.contrastive import ContrastiveCAM
from harness.convert.projector import PROJECTOR



def heads_file_for(backbone: Path) -> Path:
    """``heads.pth`` beside a backbone file."""
    from harness.core.heads import HEADS_FILE

    return Path(backbone).parent / HEADS_FILE


def load_cam_model(backbone: Path, expand_res: int = 1, device: str | torch.device = "cpu",
                   numerator: str = "paper") -> ContrastiveCAM:
    """ContraCAM on an exported backbone file and the projector in ``heads.pth`` beside it."""
    from harness.core.checkpoints import load_backbone
    from harness.core.heads import load_heads

    heads_path = heads_file_for(backbone)
    if not heads_path.is_file():
        raise CheckpointError(
            f"{heads_path}: not found. ContraCAM needs the projection head of the pretrained model: the "
            f"method that exported {Path(backbone).name} must also write heads.pth/heads.json beside it "
            f"(harness.core.heads.save_heads) with a head named {PROJECTOR!r}; `harness convert` writes it "
            f"for public MoCo / OpenSelfSup / mmselfsup / BYOL checkpoints that hold their projector")
    heads = load_heads(heads_path)
    if PROJECTOR not in heads:
        raise CheckpointError(f"{heads_path}: has heads {sorted(heads)}, but ContraCAM needs {PROJECTOR!r}")
    return ContrastiveCAM(load_backbone(backbone), heads[PROJECTOR], expand_res=expand_res,
                          numerator=numerator).to(device)


def load_image(path: Path, size: int) -> np.ndarray:
    """An image file as RGB uint8 ``(size, size, 3)``, resized without keeping its aspect."""
    from PIL import Image

    from harness.data.images import load_rgb

    return np.asarray(load_rgb(Path(path)).resize((size, size), Image.BILINEAR), dtype=np.uint8)


def normalize_images(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, S, S, 3)`` -> ImageNet-normalised float ``(N, 3, S, S)``."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


@dataclass
class CamBatch:
    """Masks of one inference batch: ``masks`` float ``(B, S, S)`` in [0, 1], ``images``
    the uint8 ``(B, S, S, 3)`` inputs (for the CRF), ``start`` the first item's index."""

    start: int
    masks: np.ndarray
    images: np.ndarray


def cam_batches(model: ContrastiveCAM, paths: Sequence[Path], size: int, batch_size: int, iterations: int,
                device: str | torch.device = "cpu") -> Iterator[CamBatch]:
    """ContraCAM masks for ``paths`` in order, ``batch_size`` images at a time (each batch
    is the negative set of its images)."""
    for start in range(0, len(paths), batch_size):
        images = np.stack([load_image(p, size) for p in paths[start:start + batch_size]])
        x = normalize_images(images).to(device)
        masks = model(x, iterations=iterations)
        yield CamBatch(start, masks[:, 0].float().cpu().numpy(), images)
