"""Background mixup and the Mixup and CutMix baselines, on tensors (the object-aware
crop is a crop region of the shared augmentation: :mod:`harness_methods.contracam.batches`).

All randomness comes from an optional ``torch.Generator`` (the global torch RNG when
``None``), so a seeded run is reproducible.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch


def mask_rectangle(hard: torch.Tensor) -> tuple[int, int, int, int] | None:
    """Inclusive ``(top, bottom, left, right)`` bounding rectangle of a boolean
    ``(H, W)`` mask, or ``None`` when the mask is empty."""
    rows = torch.nonzero(hard.any(dim=1)).flatten()
    cols = torch.nonzero(hard.any(dim=0)).flatten()
    if rows.numel() == 0:
        return None
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def background_image(image: torch.Tensor, rect: tuple[int, int, int, int]) -> torch.Tensor | None:
    """The image with its object rectangle filled by tiling the largest of the four
    strips outside it (top, left, right, bottom); ``None`` if the rectangle covers the
    whole image. ``image``: ``(C, H, W)``; ``rect``: inclusive ``(top, bottom, left, right)``."""
    _, h, w = image.shape
    top, bottom, left, right = rect
    strips = [top * w, left * h, (w - 1 - right) * h, (h - 1 - bottom) * w]
    best = max(range(4), key=lambda i: strips[i])
    if strips[best] <= 0:
        return None
    dev = image.device
    if best == 0:  # rows [0, top)
        tiled = image[:, torch.arange(h, device=dev) % top, :]
    elif best == 3:  # rows (bottom, h)
        size = h - 1 - bottom
        tiled = image[:, bottom + 1 + torch.arange(h, device=dev) % size, :]
    elif best == 1:  # cols [0, left)
        tiled = image[:, :, torch.arange(w, device=dev) % left]
    else:  # cols (right, w)
        size = w - 1 - right
        tiled = image[:, :, right + 1 + torch.arange(w, device=dev) % size]
    out = image.clone()
    out[:, top:bottom + 1, left:right + 1] = tiled[:, top:bottom + 1, left:right + 1]
    return out


@dataclass
class MixupResult:
    """A mixed batch; ``partner[i]`` is the image mixed into ``i`` with weight
    ``1 - lam[i]`` (``lam`` is per image)."""

    images: torch.Tensor
    partner: torch.Tensor
    lam: torch.Tensor


class BackgroundMixup:
    """Background mixup for view 1: ``m_i * x_i + (1 - m_i) * bg_j``.

    For each image, the hard mask ``CAM >= cam_thres`` gives a bounding rectangle; if
    it is empty or covers the whole image, or with probability ``1 - aug_prob``, the
    image is left unchanged. Otherwise its background image is built by tiling the
    largest strip outside the rectangle (:func:`background_image`) and the image is
    mixed with the background of a random partner ``j`` (a permutation of the batch)
    through its SOFT mask ``m_i``. When ``j`` has no background, one from a FIFO queue
    of the last ``queue_size`` backgrounds is used (the image stays unchanged while the
    queue is empty). Each image's own background is pushed after it is processed.
    """

    def __init__(self, cam_thres: float = 0.2, aug_prob: float = 0.4, queue_size: int = 50,
                 generator: torch.Generator | None = None) -> None:
        self.cam_thres = cam_thres
        self.aug_prob = aug_prob
        self.queue: deque[torch.Tensor] = deque(maxlen=queue_size)
        self.generator = generator

    def state_dict(self) -> dict[str, list[torch.Tensor]]:
        """The background queue (CPU tensors, oldest first)."""
        return {"queue": [bg.detach().cpu() for bg in self.queue]}

    def load_state_dict(self, state: dict[str, list[torch.Tensor]]) -> None:
        self.queue.clear()
        self.queue.extend(state["queue"])

    def backgrounds(self, images: torch.Tensor, masks: torch.Tensor,
                    generator: torch.Generator | None = None) -> list[torch.Tensor | None]:
        """Each image's background (or ``None`` when it is left unchanged)."""
        out: list[torch.Tensor | None] = []
        for image, mask in zip(images, masks):
            rect = mask_rectangle(mask[0] >= self.cam_thres)
            if rect is None or float(torch.rand((), generator=generator)) > self.aug_prob:
                out.append(None)
                continue
            out.append(background_image(image, rect))
        return out

    def __call__(self, images: torch.Tensor, masks: torch.Tensor,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix a batch ``(B, C, H, W)`` with its soft masks ``(B, 1, H, W)`` in [0, 1];
        returns the mixed batch and a boolean ``(B,)`` of the images that were mixed.
        ``generator`` overrides the one given at construction for this call."""
        generator = generator if generator is not None else self.generator
        if masks.shape[0] != images.shape[0] or masks.shape[1] != 1 or masks.shape[-2:] != images.shape[-2:]:
            raise ValueError(f"masks {tuple(masks.shape)} must be (B, 1, H, W) for images {tuple(images.shape)}")
        masks = masks.to(images.dtype)
        bgs = self.backgrounds(images, masks, generator)
        partner = torch.randperm(images.shape[0], generator=generator).tolist()
        mixed, applied = [], []
        for i, image in enumerate(images):
            bg = None
            if bgs[i] is not None:
                bg = bgs[partner[i]]
                if bg is None and self.queue:
                    bg = self.queue[int(torch.randint(len(self.queue), (1,), generator=generator))]
            if bg is None:
                mixed.append(image)
                applied.append(False)
            else:
                mixed.append(masks[i] * image + (1 - masks[i]) * bg.to(image.device))
                applied.append(True)
            if bgs[i] is not None:
                self.queue.append(bgs[i].detach())
        return torch.stack(mixed), torch.tensor(applied, device=images.device)


def _sample_lam(alpha: float, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """``max(lam, 1 - lam)`` for ``lam ~ Beta(alpha, alpha)``, ``n`` samples (float32)."""
    if alpha <= 0:
        raise ValueError(f"mixing alpha must be > 0, got {alpha}")
    # Beta(a, a) as a ratio of Gamma draws, through the generator for reproducibility.
    g1 = torch._standard_gamma(torch.full((n,), float(alpha)), generator=generator)
    g2 = torch._standard_gamma(torch.full((n,), float(alpha)), generator=generator)
    lam = g1 / (g1 + g2)
    return torch.maximum(lam, 1 - lam)


def mixup(images: torch.Tensor, alpha: float = 1.0, generator: torch.Generator | None = None) -> MixupResult:
    """Mixup within the batch with a per-image ``lam = max(l, 1 - l)``, ``l ~ Beta(a, a)``."""
    b = images.shape[0]
    partner = torch.randperm(b, generator=generator).to(images.device)
    lam = _sample_lam(alpha, b, generator).to(images.device, images.dtype)
    view = lam.view(-1, *([1] * (images.dim() - 1)))
    return MixupResult(view * images + (1 - view) * images[partner], partner, lam)


def cutmix(images: torch.Tensor, alpha: float = 1.0, generator: torch.Generator | None = None) -> MixupResult:
    """CutMix within the batch: one random rectangle of area ``1 - lam`` (clipped at the
    borders) is pasted from the partner image; ``lam`` is recomputed from the pasted
    area and is the same for the whole batch."""
    b, _, h, w = images.shape
    partner = torch.randperm(b, generator=generator).to(images.device)
    lam = float(_sample_lam(alpha, 1, generator)[0])
    cut = (1 - lam) ** 0.5
    cut_h, cut_w = int(h * cut), int(w * cut)
    cy = int(torch.randint(h, (1,), generator=generator))
    cx = int(torch.randint(w, (1,), generator=generator))
    y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    out = images.clone()
    out[:, :, y1:y2, x1:x2] = images[partner][:, :, y1:y2, x1:x2]
    lam = 1 - (y2 - y1) * (x2 - x1) / (h * w)
    return MixupResult(out, partner, torch.full((b,), lam, device=images.device, dtype=images.dtype))
