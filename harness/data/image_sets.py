"""Image sets that every dataset reader returns: items with their labels or annotations (no torch)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ClassificationSet:
    """Images with one integer label each; ``classes[label]`` is the label's name.

    ``metadata``, when the format has per-image fields (SI-Score metadata.csv, CUB boxes),
    holds one dict per sample, aligned with ``samples``; otherwise it is empty."""

    name: str
    root: Path
    classes: list[str]
    samples: list[tuple[Path, int]]
    metadata: tuple[dict[str, Any], ...] = ()

    def fingerprint(self) -> str:
        """sha256 over (relative path, label, file size) of every sample, in order."""
        h = hashlib.sha256(self.name.encode())
        for path, label in self.samples:
            rel = path.relative_to(self.root) if path.is_relative_to(self.root) else path
            h.update(f"{rel}\t{label}\t{path.stat().st_size}\n".encode())
        return h.hexdigest()

    def item_ids(self) -> list[str]:
        """Each sample's path relative to the set's root: the item's identity in per-item tables."""
        return [str(p.relative_to(self.root) if p.is_relative_to(self.root) else p) for p, _ in self.samples]

    def subset(self, indices: list[int]) -> "ClassificationSet":
        """The samples at ``indices`` (metadata kept aligned), same classes."""
        meta = tuple(self.metadata[i] for i in indices) if self.metadata else ()
        return replace(self, samples=[self.samples[i] for i in indices], metadata=meta)

    def file_stamp(self) -> str:
        """sha256 over (absolute path, size, modification time) of every sample: a local
        check that no file changed since (unlike :meth:`fingerprint`, not portable)."""
        h = hashlib.sha256()
        for path, _ in self.samples:
            st = path.stat()
            h.update(f"{path.resolve()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        return h.hexdigest()


@dataclass(frozen=True)
class ObjectAnnotation:
    """One object: box in absolute pixels (x, y, w, h), category id as in the file."""

    bbox: tuple[float, float, float, float]
    category_id: int
    iscrowd: bool = False
    difficult: bool = False
    segmentation: Any = None  # COCO polygons (list of lists) or RLE dict, or None
    area: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DetectionImage:
    image_id: int | str
    path: Path
    width: int
    height: int
    objects: list[ObjectAnnotation]


@dataclass(frozen=True)
class DetectionSet:
    """Images with boxes (and masks where the format has them)."""

    name: str
    root: Path
    categories: list[dict[str, Any]]  # [{"id": int, "name": str}, ...] as in the file
    images: list[DetectionImage]
    ann_file: Path | None = None


@dataclass(frozen=True)
class SegmentationSet:
    """Image / label-map pairs. Labels are raw file values; ``reduce_zero_label`` and
    ``ignore_index`` say how the protocol treats them."""

    name: str
    root: Path
    classes: list[str]
    samples: list[tuple[Path, Path]]
    ignore_index: int = 255
    reduce_zero_label: bool = False


@dataclass(frozen=True)
class ArrayClassificationSet:
    """Images held in arrays (CIFAR pickles): ``images`` is uint8 (N, H, W, 3), ``labels``
    int64 (N,), ``classes[label]`` the label's name, ``root`` the folder of the files read."""

    name: str
    root: Path
    classes: list[str]
    images: Any  # numpy.ndarray
    labels: Any  # numpy.ndarray

    def fingerprint(self) -> str:
        """sha256 over the image bytes and labels."""
        h = hashlib.sha256(self.name.encode())
        h.update(self.images.tobytes())
        h.update(self.labels.astype("<i8").tobytes())
        return h.hexdigest()

    def item_ids(self) -> list[str]:
        """``<name>:<row>`` of each image: the item's identity in per-item tables."""
        return [f"{self.name}:{i}" for i in range(len(self.labels))]

    def subset(self, indices: list[int]) -> "ArrayClassificationSet":
        """The images at ``indices``, same classes."""
        return replace(self, images=self.images[indices], labels=self.labels[indices])


@dataclass(frozen=True)
class MaskSet:
    """Image / foreground-mask pairs (localization ground truth). ``mask_format`` names how
    the mask file turns into a boolean foreground map: see ``harness.data.masks``."""

    name: str
    root: Path
    samples: list[tuple[Path, Path]]
    mask_format: str
