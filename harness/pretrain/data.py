"""Scene images for pretraining: listing, decoding, in-memory cache, raw batches, sampler.

Images are decoded to uint8 ``(3, H, W)`` tensors whose short side is ``short_side``
(aspect kept; the long side is capped at ``max_long`` by shrinking the whole image, so
normalised coordinates of the original image stay valid). A batch is padded to its
largest image by edge replication (so bilinear sampling at a crop's border never reads
zeros) and carries each image's true size; augmentation only samples inside that size.

Data order is a pure function of ``(seed, epoch)``: :class:`StepSampler` yields, for each
optimisation step, this rank's share of the step's global batch. Resuming at step ``s``
restores the order exactly (epoch ``s // steps_per_epoch``, position ``s % steps_per_epoch``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset, Sampler

from harness.core.config_section import checked_section
from harness.data.layout import COCO
from harness.core.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DEFAULT_DIRS = (f"{COCO}/train2017",)

#: ``meta(index, path) -> dict`` returns per-image metadata (boxes, masks, ...) that is
#: passed through unchanged to :attr:`RawBatch.meta`.
MetaFn = Callable[[int, Path], dict[str, Any]]


def list_scene_images(data_root: Path, dirs: Sequence[str] = DEFAULT_DIRS) -> list[Path]:
    """All images under ``data_root/<dir>`` for each dir (not recursive), sorted by path."""
    paths: list[Path] = []
    for d in dirs:
        folder = Path(data_root) / d
        if not folder.is_dir():
            raise DataError(f"{folder}: pretraining image folder not found (expected JPEG/PNG scene images "
                            f"in {d}/ under the data root)")
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
        paths.extend(found)
    return paths


def resized_shape(h: int, w: int, short_side: int, max_long: int | None) -> tuple[int, int]:
    """Target ``(h, w)``: short side -> ``short_side``, then shrink so long side <= ``max_long``."""
    scale = short_side / min(h, w)
    if max_long is not None:
        scale = min(scale, max_long / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def decode_resized(path: Path, short_side: int, max_long: int | None = None) -> torch.Tensor:
    """Decode an image file to RGB uint8 ``(3, H, W)`` resized (antialiased) per :func:`resized_shape`."""
    try:
        with Image.open(path) as im:
            img = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc})") from exc
    h, w = img.shape[-2:]
    th, tw = resized_shape(h, w, short_side, max_long)
    if (th, tw) == (h, w):
        return img.contiguous()
    out = F.interpolate(img[None].float(), size=(th, tw), mode="bilinear", antialias=True, align_corners=False)
    return out[0].round_().clamp_(0, 255).to(torch.uint8)


class SceneImages(Dataset):
    """Scene images as uint8 tensors, optionally decoded once and kept in memory.

    ``__getitem__`` returns ``{"image": uint8 (3,H,W), "index": int, "meta": dict}``.
    ``meta`` comes from the optional ``meta`` hook (e.g. ContraCAM boxes per image).
    """

    def __init__(self, paths: Sequence[Path], short_side: int, max_long: int | None = None,
                 cache: bool = False, meta: MetaFn | None = None) -> None:
        if not paths:
            raise DataError("no pretraining images given")
        self.paths = [Path(p) for p in paths]
        self.short_side = int(short_side)
        self.max_long = None if max_long is None else int(max_long)
        self.meta_fn = meta
        self._cache: list[torch.Tensor] | None = None
        if cache:
            self._cache = [decode_resized(p, self.short_side, self.max_long) for p in self.paths]

    @classmethod
    def from_root(cls, data_root: Path, cfg: "DataConfig", meta: MetaFn | None = None) -> "SceneImages":
        """Build from a data root and the recipe's ``data`` section."""
        return cls(list_scene_images(data_root, cfg.dirs), cfg.short_side, cfg.max_long, cfg.cache, meta)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = self._cache[index] if self._cache is not None else decode_resized(
            self.paths[index], self.short_side, self.max_long)
        meta = self.meta_fn(index, self.paths[index]) if self.meta_fn is not None else {}
        return {"image": image, "index": index, "meta": meta}

    def fingerprint(self) -> str:
        """sha256 over (file name, size) of every image in order, plus the decode settings."""
        h = hashlib.sha256(f"{self.short_side}:{self.max_long}".encode())
        for p in self.paths:
            h.update(f"{p.name}\t{p.stat().st_size}\n".encode())
        return h.hexdigest()


@dataclass
class RawBatch:
    """A padded uint8 batch before augmentation.

    ``images``: uint8 ``(N, 3, Hmax, Wmax)`` (edge-replicated padding);
    ``sizes``: long ``(N, 2)`` true ``(h, w)`` of each image; ``index``: long ``(N,)``
    dataset indices; ``meta``: the per-image metadata dicts, in batch order.
    """

    images: torch.Tensor
    sizes: torch.Tensor
    index: torch.Tensor
    meta: list[dict[str, Any]] = field(default_factory=list)

    def to(self, device: torch.device | str) -> "RawBatch":
        nb = torch.device(device).type == "cuda"
        return RawBatch(self.images.to(device, non_blocking=nb), self.sizes.to(device, non_blocking=nb),
                        self.index.to(device, non_blocking=nb), self.meta)

    def pin_memory(self) -> "RawBatch":
        return RawBatch(self.images.pin_memory(), self.sizes, self.index, self.meta)

    def __len__(self) -> int:
        return int(self.images.shape[0])


def collate(items: list[dict[str, Any]]) -> RawBatch:
    """Pad images to the batch's largest ``(h, w)`` by replicating the last row/column."""
    hmax = max(it["image"].shape[1] for it in items)
    wmax = max(it["image"].shape[2] for it in items)
    out = torch.empty((len(items), 3, hmax, wmax), dtype=torch.uint8)
    sizes = torch.empty((len(items), 2), dtype=torch.long)
    for i, it in enumerate(items):
        img = it["image"]
        h, w = img.shape[1:]
        out[i, :, :h, :w] = img
        if w < wmax:
            out[i, :, :h, w:] = img[:, :, w - 1:w]
        if h < hmax:
            out[i, :, h:, :] = out[i, :, h - 1:h, :]
        sizes[i, 0], sizes[i, 1] = h, w
    index = torch.tensor([int(it["index"]) for it in items], dtype=torch.long)
    return RawBatch(out, sizes, index, [it["meta"] for it in items])


class StepSampler(Sampler[list[int]]):
    """Batch sampler indexed by optimisation step: resumable and DDP-aware.

    Epoch ``e`` visits ``randperm(n)`` drawn from a generator seeded with ``(seed, e)``;
    step ``s`` takes the global batch ``order[p*B:(p+1)*B]`` (``p = s % steps_per_epoch``,
    the incomplete last batch is dropped), and rank ``r`` of ``W`` gets the contiguous slice
    ``[r*B/W, (r+1)*B/W)`` of it. Iteration covers steps ``start_step .. total_steps-1``.
    """

    def __init__(self, n: int, global_batch: int, seed: int, epochs: int, start_step: int = 0,
                 rank: int = 0, world_size: int = 1, shuffle: bool = True) -> None:
        if global_batch % world_size:
            raise ConfigError(f"batch_size {global_batch} is not divisible by the world size {world_size}")
        if n < global_batch:
            raise ConfigError(f"batch_size {global_batch} is larger than the dataset ({n} images)")
        self.n, self.global_batch, self.seed, self.epochs = n, global_batch, int(seed), int(epochs)
        self.start_step, self.rank, self.world_size, self.shuffle = int(start_step), rank, world_size, shuffle
        self.steps_per_epoch = n // global_batch
        self.total_steps = self.steps_per_epoch * self.epochs
        self._order_epoch = -1
        self._order = torch.arange(n)

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The permutation of dataset indices visited in ``epoch``."""
        if not self.shuffle:
            return torch.arange(self.n)
        if epoch != self._order_epoch:
            g = torch.Generator().manual_seed(hash_seed(self.seed, epoch, 0x5EED))
            self._order, self._order_epoch = torch.randperm(self.n, generator=g), epoch
        return self._order

    def global_batch_indices(self, step: int) -> list[int]:
        """Dataset indices of the whole (all ranks) batch of ``step``."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        order = self.epoch_order(epoch)
        return order[pos * self.global_batch:(pos + 1) * self.global_batch].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        per = self.global_batch // self.world_size
        for step in range(self.start_step, self.total_steps):
            idx = self.global_batch_indices(step)
            yield idx[self.rank * per:(self.rank + 1) * per]

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)


def hash_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (stable across processes and platforms)."""
    digest = hashlib.sha256(":".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass(frozen=True)
class DataConfig:
    """The recipe's ``data`` section.

    ``dirs``: image folders under the data root; ``short_side``/``max_long``: decode size;
    ``cache``: decode everything once into memory (small datasets); ``num_workers``:
    DataLoader workers decoding images when not cached.
    """

    dirs: tuple[str, ...] = DEFAULT_DIRS
    short_side: int = 256
    max_long: int | None = None
    cache: bool = False
    num_workers: int = 0

    @classmethod
    def from_cfg(cls, d: dict[str, Any] | None) -> "DataConfig":
        d = checked_section(d, {"dirs", "short_side", "max_long", "cache", "num_workers"}, "recipe section 'data'")
        if "dirs" in d:
            d["dirs"] = tuple([d["dirs"]] if isinstance(d["dirs"], str) else d["dirs"])
        return cls(**d)
