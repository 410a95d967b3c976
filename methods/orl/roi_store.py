"""On-disk, chunked store of per-image RoI embeddings (resumable, memory-mapped reads).

Layout (``store_dir``): ``manifest.json`` (what the embeddings were computed from; a
store with another manifest is discarded) and ``chunk_<c:06d>.npy`` holding images
``[c*chunk_size, (c+1)*chunk_size)`` as ``(n, P, D)`` arrays (float16 or float32), RoI
``r`` of image ``i`` at ``[i, r]``, rows past the image's RoI count zero. Chunks are
written under a temporary name and renamed, so only whole chunks ever exist.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from harness.core.atomic import atomic_open, atomic_write_json
from harness.core.errors import ConfigError, DataError

MANIFEST = "manifest.json"


class RoIEmbeddingStore:
    """Chunks of padded RoI embeddings for ``num_images`` images with ``counts`` RoIs each."""

    def __init__(self, store_dir: Path, counts: Sequence[int], chunk_size: int, manifest: dict[str, Any]) -> None:
        if chunk_size < 1:
            raise ConfigError(f"roi.chunk_size must be >= 1, got {chunk_size}")
        self.dir = Path(store_dir)
        self.counts = np.asarray(counts, dtype=np.int64)
        self.chunk_size = int(chunk_size)
        self.max_rois = int(self.counts.max()) if len(self.counts) else 0
        self.manifest = {**manifest, "chunk_size": self.chunk_size, "num_images": len(self.counts),
                         "max_rois": self.max_rois}
        self._maps: dict[int, np.ndarray] = {}
        self._prepare()

    def _prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / MANIFEST
        if path.is_file():
            if json.loads(path.read_text()) == self.manifest:
                return
            for stale in self.dir.glob("chunk_*.npy"):
                stale.unlink()
        atomic_write_json(path, self.manifest, sort_keys=True)

    @property
    def num_chunks(self) -> int:
        return (len(self.counts) + self.chunk_size - 1) // self.chunk_size

    def chunk_path(self, c: int) -> Path:
        return self.dir / f"chunk_{c:06d}.npy"

    def chunk_range(self, c: int) -> range:
        return range(c * self.chunk_size, min(len(self.counts), (c + 1) * self.chunk_size))

    def missing_chunks(self) -> list[int]:
        return [c for c in range(self.num_chunks) if not self.chunk_path(c).is_file()]

    def write_chunk(self, c: int, per_image: Sequence[np.ndarray], dtype: str) -> None:
        """Store the ``(n_i, D)`` embeddings of the images of chunk ``c``."""
        rng = self.chunk_range(c)
        if len(per_image) != len(rng):
            raise ValueError(f"chunk {c} needs {len(rng)} images, got {len(per_image)}")
        dim = per_image[0].shape[1]
        out = np.zeros((len(rng), self.max_rois, dim), dtype=dtype)
        for j, (i, emb) in enumerate(zip(rng, per_image)):
            if len(emb) != self.counts[i]:
                raise ValueError(f"image {i}: {len(emb)} embeddings for {self.counts[i]} RoIs")
            out[j, :len(emb)] = emb
        path = self.chunk_path(c)
        with atomic_open(path) as fh:
            np.save(fh, out)

    def _chunk(self, c: int) -> np.ndarray:
        if c not in self._maps:
            path = self.chunk_path(c)
            if not path.is_file():
                raise DataError(f"{path}: missing RoI-embedding chunk")
            self._maps[c] = np.load(path, mmap_mode="r")
        return self._maps[c]

    def gather(self, indices: np.ndarray) -> np.ndarray:
        """Padded embeddings ``(*indices.shape, P, D)`` (float32) of the given images."""
        flat = np.asarray(indices, dtype=np.int64).reshape(-1)
        first = self._chunk(0)
        out = np.empty((len(flat), self.max_rois, first.shape[2]), dtype=np.float32)
        chunk_of = flat // self.chunk_size
        for c in np.unique(chunk_of):
            sel = np.nonzero(chunk_of == c)[0]
            out[sel] = self._chunk(int(c))[flat[sel] - c * self.chunk_size]
        return out.reshape(*np.shape(indices), self.max_rois, first.shape[2])

    def fill(self, embed: Callable[[range], list[np.ndarray]], dtype: str,
             progress: Callable[[int, int], None] | None = None) -> int:
        """Compute every missing chunk with ``embed(image_range)``; returns chunks computed."""
        missing = self.missing_chunks()
        done = self.num_chunks - len(missing)
        for c in missing:
            self.write_chunk(c, embed(self.chunk_range(c)), dtype)
            done += 1
            if progress:
                progress(done, self.num_chunks)
        return len(missing)
