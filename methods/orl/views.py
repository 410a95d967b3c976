"""ORL stage-3 inputs: two image views, an intra-RoI pair and an inter-RoI pair per image.

For every image of a batch (all random choices drawn from the step's ``StepRNG``, so a
batch is a pure function of ``(seed, step)``):

- image views: the usual two-view BYOL augmentation of the whole image;
- intra-RoI pair: one of the image's filtered proposals, chosen uniformly, and a jittered
  copy of it (:func:`harness_methods.orl.boxes.jitter_box`);
- inter-RoI pair: one of the image's ``K`` neighbours, chosen uniformly, and one of the
  stored RoI pairs with that neighbour, chosen uniformly: the query box in this image,
  the key box in the neighbour image.

RoI patches are cropped from the decoded image and resized to ``patch_size`` (their own
resolution), then flipped and colour-augmented only (no random crop). Boxes are stored
in original-image pixels and scaled to the decoded image.
"""
from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from harness.pretrain.augment import StepRNG, ViewAug, color_augment, make_view, normalize, render_crops
from harness.pretrain.data import RawBatch, SceneImages, collate
from harness_methods.orl.artifacts import Correspondence
from harness_methods.orl.boxes import jitter_box


@dataclass(frozen=True)
class JitterConfig:
    """Intra-RoI jitter (recipe ``orl.jitter``): published values by default."""

    shift: tuple[float, float] = (-0.5, 0.5)
    scale: tuple[float, float] = (0.5, 2.0)
    ratio: tuple[float, float] = (0.5, 2.0)
    iou_thr: float | None = 0.5
    attempts: int = 200


def xywh_to_xyxy_scaled(boxes: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> torch.Tensor:
    """``(n, 4)`` ``(x, y, w, h)`` boxes -> ``(x0, y0, x1, y1)`` scaled per row (float32)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.stack([b[:, 0] * sx, b[:, 1] * sy, (b[:, 0] + b[:, 2]) * sx, (b[:, 1] + b[:, 3]) * sy], axis=1)
    return torch.from_numpy(out).float()


def augment_patches(x: torch.Tensor, aug: ViewAug, rng: StepRNG) -> torch.Tensor:
    """Flip, colour augmentation and normalisation of float [0, 1] patches."""
    flip = (rng.rand(x.shape[0]) < aug.flip_p).to(x.device)
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    return normalize(color_augment(x, aug, rng), aug)


class ORLBatch:
    """Batch function of stage 3 for :func:`harness.pretrain.loop.train`.

    ``images`` is the training :class:`SceneImages` (its order is the correspondence's
    image order); neighbour images are read from it (from memory when it caches,
    otherwise decoded by ``decode_threads`` threads).
    """

    def __init__(self, corr: Correspondence, images: SceneImages, image_augs: Sequence[ViewAug],
                 patch_augs: Sequence[ViewAug], patch_size: int, jitter: JitterConfig = JitterConfig(),
                 decode_threads: int = 4) -> None:
        if len(images) != corr.num_images:
            raise ValueError(f"{len(images)} training images but correspondence for {corr.num_images}")
        self.corr, self.images = corr, images
        self.image_augs, self.patch_augs = tuple(image_augs), tuple(patch_augs)
        self.patch_size, self.jitter = int(patch_size), jitter
        self.decode_threads = max(1, int(decode_threads))

    def _load(self, indices: list[int]) -> RawBatch:
        if self.decode_threads == 1 or len(indices) == 1:
            items = [self.images[i] for i in indices]
        else:
            with ThreadPoolExecutor(self.decode_threads) as pool:
                items = list(pool.map(self.images.__getitem__, indices))
        return collate(items)

    def choose(self, index: np.ndarray, sizes_hw: np.ndarray, rng: StepRNG) -> dict[str, Any]:
        """The boxes of one batch in decoded-image pixels plus the neighbour indices."""
        n, corr, jit = len(index), self.corr, self.jitter
        u = rng.rand(n, 4).double().numpy()
        intra1, intra2, query, key, neighbor = [], [], [], [], []
        for b, i in enumerate(index):
            rois = corr.rois(i)
            box = rois[min(int(u[b, 0] * len(rois)), len(rois) - 1)]
            w0, h0 = (int(v) for v in corr.sizes[i])
            moved = jitter_box(box, (w0, h0), random.Random(int(u[b, 3] * 2**52)), shift=jit.shift,
                               scale=jit.scale, ratio=jit.ratio, iou_thr=jit.iou_thr, attempts=jit.attempts)
            intra1.append(box)
            intra2.append(moved)
            rank = min(int(u[b, 1] * corr.k), corr.k - 1)
            qb, kb, _ = corr.pairs(i, rank)
            j = min(int(u[b, 2] * len(qb)), len(qb) - 1)
            query.append(qb[j])
            key.append(kb[j])
            neighbor.append(int(corr.neighbors[i, rank]))
        own_sx = sizes_hw[:, 1] / corr.sizes[index, 0]
        own_sy = sizes_hw[:, 0] / corr.sizes[index, 1]
        return {"intra1": xywh_to_xyxy_scaled(np.array(intra1), own_sx, own_sy),
                "intra2": xywh_to_xyxy_scaled(np.array(intra2), own_sx, own_sy),
                "query": xywh_to_xyxy_scaled(np.array(query), own_sx, own_sy),
                "key_xywh": np.array(key), "neighbor": neighbor}

    def __call__(self, raw: RawBatch, rng: StepRNG) -> dict[str, Any]:
        source = raw.images.float()
        out: dict[str, Any] = {"index": raw.index}
        for k, aug in enumerate(self.image_augs, start=1):
            out[f"image{k}"] = make_view(raw, aug, rng, source=source).image
        index = raw.index.cpu().numpy()
        chosen = self.choose(index, raw.sizes.cpu().numpy().astype(np.float64), rng)
        nb = self._load(chosen["neighbor"]).to(raw.images.device)
        nb_sizes = nb.sizes.cpu().numpy().astype(np.float64)
        nb_index = np.asarray(chosen["neighbor"])
        key = xywh_to_xyxy_scaled(chosen["key_xywh"], nb_sizes[:, 1] / self.corr.sizes[nb_index, 0],
                                  nb_sizes[:, 0] / self.corr.sizes[nb_index, 1])
        s = self.patch_size
        patches = {"intra1": render_crops(source, chosen["intra1"], s) / 255.0,
                   "intra2": render_crops(source, chosen["intra2"], s) / 255.0,
                   "inter1": render_crops(source, chosen["query"], s) / 255.0,
                   "inter2": render_crops(nb.images, key, s)}
        for name, x in patches.items():
            out[name] = augment_patches(x, self.patch_augs[int(name[-1]) - 1], rng)
        return out
