"""Batch functions of the object-aware pretraining stage (see :mod:`harness.pretrain.loop`).

Per-image metadata comes from :func:`meta_reader` through the dataset's meta hook:
``boxes`` (list of normalised ``xyxy`` boxes) and/or ``mask`` (uint8 ``(S, S)`` tensor,
the soft CAM of the whole image). On top of the shared two-view augmentation:

- object-aware crop: both views are cropped inside ONE box of the image, drawn
  uniformly (the full image when it has none), as if that box had been cut out first;
- background mixup: view 1 (after colour augmentation and normalisation) is mixed with
  another image's background through its soft mask, cropped and flipped exactly as
  view 1 was;
- Mixup / CutMix: view 1 is mixed within the batch; the partner and weight are passed
  to the model as ``mix_partner`` / ``mix_lam``.

Randomness comes from the step's :class:`StepRNG`, so a step is reproducible; the
background FIFO queue is saved with each checkpoint (:meth:`ObjectAwareBatch.state_dict`)
and restored on resume.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from harness.pretrain.augment import StepRNG, TwoViewBatch, render_crops
from harness.pretrain.data import RawBatch
from harness_methods.contracam.augment import BackgroundMixup, cutmix, mixup


def meta_reader(keys: dict[Path, str], boxes: dict[str, list[Any]] | None,
                mask_dir: Path | None) -> Callable[[int, Path], dict[str, Any]]:
    """The dataset meta hook: boxes and/or mask of an image, looked up by its key."""
    import numpy as np

    from harness.cam.boxes import load_mask, mask_path

    def meta(index: int, path: Path) -> dict[str, Any]:
        key = keys[Path(path)]
        out: dict[str, Any] = {}
        if boxes is not None:
            out["boxes"] = boxes[key]
        if mask_dir is not None:
            out["mask"] = torch.from_numpy(np.round(load_mask(mask_path(mask_dir, key)) * 255).astype(np.uint8))
        return out

    return meta


def object_regions(raw: RawBatch, rng: StepRNG) -> torch.Tensor:
    """One box per image drawn uniformly from ``meta["boxes"]`` (NaN row: no box)."""
    u = rng.rand(len(raw))
    out = torch.full((len(raw), 4), float("nan"))
    for i, meta in enumerate(raw.meta):
        boxes = meta["boxes"]
        if boxes:
            out[i] = torch.tensor(boxes[min(int(u[i] * len(boxes)), len(boxes) - 1)], dtype=torch.float32)
    return out


def view_masks(raw: RawBatch, box: torch.Tensor, flip: torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
    """The images' masks cropped to a view's normalised crop boxes and flipped like it:
    float ``(N, 1, size, size)`` in [0, 1]."""
    masks = torch.stack([m["mask"] for m in raw.meta]).to(device).float().div_(255.0)[:, None]
    side = torch.tensor([masks.shape[-1], masks.shape[-2]] * 2, dtype=torch.float32)
    out = render_crops(masks, box.float() * side, size).clamp_(0, 1)
    rows = flip.nonzero()[:, 0].to(device)
    out[rows] = out[rows].flip(-1)
    return out


class ObjectAwareBatch:
    """Two views (optionally inside object boxes) plus background mixup or Mixup/CutMix of view 1."""

    def __init__(self, views: TwoViewBatch, bgmix: BackgroundMixup | None = None, mix: str | None = None,
                 alpha: float = 1.0) -> None:
        if mix not in (None, "mixup", "cutmix"):
            raise ValueError(f"mix must be None, 'mixup' or 'cutmix', got {mix!r}")
        self.views, self.bgmix, self.mix, self.alpha = views, bgmix, mix, alpha

    def state_dict(self) -> dict[str, Any]:
        """The background mixup queue (the only state carried from step to step)."""
        return {"bgmix": self.bgmix.state_dict() if self.bgmix is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.bgmix is not None and state.get("bgmix") is not None:
            self.bgmix.load_state_dict(state["bgmix"])

    def __call__(self, raw: RawBatch, rng: StepRNG) -> dict[str, Any]:
        out = self.views(raw, rng)
        view1 = out["view1"]
        if self.bgmix is not None:
            masks = view_masks(raw, out["box1"], out["flip1"], view1.shape[-1], view1.device)
            out["view1"], out["bgmix_applied"] = self.bgmix(view1, masks, generator=rng.generator)
        if self.mix is not None:
            fn = mixup if self.mix == "mixup" else cutmix
            mixed = fn(view1, self.alpha, generator=rng.generator)
            out["view1"], out["mix_partner"], out["mix_lam"] = mixed.images, mixed.partner, mixed.lam
        return out
