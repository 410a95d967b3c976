"""Frozen-backbone features of a :class:`ClassificationSet`, cached on disk.

A cache entry is keyed by sha256(model key, dataset fingerprint, transform spec, file
stamp); the model key of an exported backbone is the sha256 of its ``backbone.pth``. The
fingerprint (the one results record) hashes paths, labels and sizes; the file stamp adds
every image file's modification time, so that a file rewritten in place at the same size
is extracted again (array datasets: the fingerprint hashes the pixels themselves). Entries are
written atomically, so a killed run never leaves a half-written file behind, and a
second run with the same key does no forward pass at all.

Under torchrun or SLURM (``WORLD_SIZE > 1``) each rank extracts a contiguous 1/N of the
images on its own device, writes its part next to the cache entry, and every rank reads
the parts back in rank order after a barrier; rank 0 writes the whole entry.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from harness.data.images import IMAGENET_MEAN, IMAGENET_STD
from harness.core import paths
from harness.core.checkpoints import sha256_file
from harness.data.image_sets import ArrayClassificationSet, ClassificationSet
from harness.core.atomic import atomic_open
from harness.core.errors import DataError

log = logging.getLogger("harness.tasks.features")


@dataclass(frozen=True)
class TransformSpec:
    """Resize(shorter side) + CenterCrop + ImageNet normalisation; ``border`` px are cut
    from every side first (ObjectNet's 2-px frame)."""

    resize: int = 256
    crop: int = 224
    border: int = 0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def build(self) -> Callable:
        from torchvision import transforms as T

        steps: list = [_CutBorder(self.border)] if self.border else []
        steps += [T.Resize(self.resize), T.CenterCrop(self.crop), T.ToTensor(), T.Normalize(self.mean, self.std)]
        return T.Compose(steps)

    @classmethod
    def from_cfg(cls, cfg: dict, border: int = 0) -> "TransformSpec":
        return cls(resize=int(cfg.get("resize", 256)), crop=int(cfg.get("crop", 224)), border=border)


@dataclass(frozen=True)
class _CutBorder:
    px: int

    def __call__(self, im):
        return im.crop((self.px, self.px, im.width - self.px, im.height - self.px))


@dataclass
class Features:
    """Row-aligned features ``(N, D)`` float32 and labels ``(N,)`` int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: torch.Tensor) -> "Features":
        return Features(self.x[idx], self.y[idx])

    def to(self, device: str | torch.device) -> "Features":
        return Features(self.x.to(device), self.y.to(device))

    @staticmethod
    def cat(parts: list["Features"]) -> "Features":
        return Features(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]))


ImageSet = ClassificationSet | ArrayClassificationSet


def set_size(dataset: ImageSet) -> int:
    return len(dataset.labels) if isinstance(dataset, ArrayClassificationSet) else len(dataset.samples)


class _FileImages(torch.utils.data.Dataset):
    def __init__(self, samples: list[tuple[Path, int]], transform: Callable):
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.samples[i]
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except OSError as exc:
            raise DataError(f"{path}: cannot read image ({exc})") from exc
        return self.transform(img), label


class _ArrayImages(torch.utils.data.Dataset):
    def __init__(self, images, labels, transform: Callable):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def load_backbone_model(path: Path) -> nn.Module:
    """The exported torchvision ResNet with ``fc = Identity`` (strict key check)."""
    from harness.core.checkpoints import load_backbone

    return load_backbone(Path(path))


def default_cache_dir() -> Path:
    return paths.cache_dir() / "features"


class FeatureExtractor:
    """Pooled features of a frozen model, extracted once per (model, dataset, transform).

    ``model`` is any module mapping a normalised image batch to ``(B, D)`` features;
    ``model_key`` identifies its weights in the cache. ``forward_batches`` counts the
    batches this instance pushed through the model (0 when everything was cached).
    """

    def __init__(self, model: nn.Module | Callable[[], nn.Module], model_key: str, spec: TransformSpec,
                 cache_dir: Path | None = None, device: str = "cpu", batch_size: int = 64, workers: int = 0):
        self._model = model
        self.model_key = model_key
        self.spec = spec
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.device = device
        self.batch_size = int(batch_size)
        self.workers = int(workers)
        self.forward_batches = 0

    @classmethod
    def for_backbone(cls, backbone: Path, spec: TransformSpec, cfg: dict, device: str) -> "FeatureExtractor":
        """An extractor of an exported backbone file, configured by a task's ``cfg``."""
        backbone = Path(backbone)
        if not backbone.is_file():
            raise DataError(f"{backbone}: backbone file not found")
        cache = cfg.get("cache_dir")
        return cls(lambda: load_backbone_model(backbone), sha256_file(backbone), spec,
                   cache_dir=Path(cache) if cache else None, device=device,
                   batch_size=int(cfg.get("batch_size", 64)), workers=int(cfg.get("workers", 0)))

    def model(self) -> nn.Module:
        if not isinstance(self._model, nn.Module):
            self._model = self._model()
        return self._model.to(self.device).eval()

    def cache_path(self, dataset: ImageSet, fingerprint: str | None = None, spec: TransformSpec | None = None
                   ) -> Path:
        stamp = dataset.file_stamp() if isinstance(dataset, ClassificationSet) else ""
        key = hashlib.sha256("\n".join([self.model_key, fingerprint or dataset.fingerprint(),
                                        (spec or self.spec).key(), stamp]).encode()).hexdigest()
        return self.cache_dir / f"{key}.pt"

    def __call__(self, dataset: ImageSet, fingerprint: str | None = None, spec: TransformSpec | None = None
                 ) -> Features:
        """Features of every sample of ``dataset`` in order (from the cache when present).

        ``fingerprint`` saves recomputing ``dataset.fingerprint()``; ``spec`` overrides the
        extractor's transform for this dataset."""
        spec = spec or self.spec
        if set_size(dataset) == 0:
            raise DataError(f"{dataset.root}: dataset {dataset.name!r} has no images")
        path = self.cache_path(dataset, fingerprint, spec)
        if path.is_file():
            return _load_features(path)
        from harness.pretrain import dist

        info = dist.init_from_env(self.device)
        lo, hi = shard(set_size(dataset), info.rank, info.world_size)
        feats = self._extract(dataset, spec, lo, hi)
        if info.distributed:
            part = path.with_name(f"{path.stem}.part{info.rank}-of-{info.world_size}.pt")
            _save_features(part, feats, dataset, spec)
            dist.barrier()
            parts = [path.with_name(f"{path.stem}.part{r}-of-{info.world_size}.pt") for r in range(info.world_size)]
            loaded = [f for f in map(_load_features, parts) if len(f)]
            feats = Features(torch.cat([f.x for f in loaded]), torch.cat([f.y for f in loaded]))
            dist.barrier()  # every rank has read every part
            if info.is_main:
                for p in parts:
                    p.unlink(missing_ok=True)
        if info.is_main:
            _save_features(path, feats, dataset, spec)
        return feats

    @torch.no_grad()
    def _extract(self, dataset: ImageSet, spec: TransformSpec, lo: int, hi: int) -> Features:
        log.info("extracting features of %s (images %d-%d of %d)", dataset.name, lo, hi, set_size(dataset))
        model = self.model()
        if isinstance(dataset, ArrayClassificationSet):
            images = _ArrayImages(dataset.images, dataset.labels, spec.build())
        else:
            images = _FileImages(dataset.samples, spec.build())
        images = torch.utils.data.Subset(images, range(lo, hi))
        loader = torch.utils.data.DataLoader(images, batch_size=self.batch_size, shuffle=False,
                                             num_workers=self.workers, pin_memory=self.device.startswith("cuda"))
        xs, ys = [], []
        for images, labels in loader:
            out = model(images.to(self.device, non_blocking=True))
            self.forward_batches += 1
            xs.append(out.flatten(1).float().cpu())
            ys.append(labels.long())
        if not xs:  # a rank whose share is empty (fewer images than ranks)
            return Features(torch.empty(0, 0), torch.empty(0, dtype=torch.long))
        return Features(torch.cat(xs), torch.cat(ys))


def shard(n: int, rank: int, world: int) -> tuple[int, int]:
    """The contiguous range ``[lo, hi)`` of ``n`` items that ``rank`` of ``world`` takes."""
    return n * rank // world, n * (rank + 1) // world


def _save_features(path: Path, feats: Features, dataset: ImageSet, spec: TransformSpec) -> None:
    with atomic_open(path) as fh:
        torch.save({"x": feats.x, "y": feats.y, "dataset": dataset.name, "spec": spec.key()}, fh)


def _load_features(path: Path) -> Features:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    return Features(blob["x"], blob["y"])
