"""The files stage 2 (correspondence) writes and stage 3 reads; schema in ``SCHEMA.md``.

``<workdir>/``
- ``knn.npz``: ``neighbors`` int32 ``(N, K)`` image indices, most similar first, never
  the image itself; ``similarity`` float32 ``(N, K)`` cosine of the stage-1 projector
  embeddings.
- ``rois.npz``: ``boxes`` int32 ``(M, 4)`` filtered proposals ``(x, y, w, h)`` in pixels
  of the original image; ``offsets`` int64 ``(N+1,)`` (image ``i`` owns rows
  ``offsets[i]:offsets[i+1]``, at least one); ``sizes`` int32 ``(N, 2)`` original image
  ``(width, height)``.
- ``pairs.npz``: ``offsets`` int64 ``(N*K+1,)``: the pairs between image ``i`` and its
  ``r``-th neighbour ``neighbors[i, r]`` are rows ``offsets[i*K+r]:offsets[i*K+r+1]``
  (at least one), by decreasing score; ``query_box`` / ``key_box`` int32 ``(P, 4)``
  boxes ``(x, y, w, h)`` in image ``i`` / in the neighbour; ``score`` float32 ``(P,)``
  cosine of the two RoIs' stage-1 backbone embeddings.
- ``correspondence.json``: ``schema`` (int), ``names`` (image paths relative to the
  data root, index = image index above), ``params`` (the stage-2 settings) and
  ``summary`` (counts and means). Written last: its presence marks a finished stage.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.atomic import atomic_savez, atomic_write_json
from harness.core.errors import DataError

SCHEMA_VERSION = 1
KNN_FILE, ROIS_FILE, PAIRS_FILE, META_FILE = "knn.npz", "rois.npz", "pairs.npz", "correspondence.json"


def _load(path: Path, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: missing ORL correspondence file (stage 'correspondence' has not finished)")
    with np.load(path) as data:
        missing = [k for k in keys if k not in data.files]
        if missing:
            raise DataError(f"{path}: missing arrays {missing} (expected {list(keys)})")
        return {k: data[k] for k in keys + optional if k in data.files}


@dataclass
class Correspondence:
    """Everything stage 3 samples from: proposals, neighbours and RoI pairs per image."""

    names: list[str]
    neighbors: np.ndarray
    similarity: np.ndarray
    roi_boxes: np.ndarray
    roi_offsets: np.ndarray
    sizes: np.ndarray
    pair_offsets: np.ndarray
    query_box: np.ndarray
    key_box: np.ndarray
    score: np.ndarray
    params: dict[str, Any]
    summary: dict[str, Any]
    knn_cache_key: str = ""  # what the neighbours were computed from (see ``nearest_images``)

    @property
    def num_images(self) -> int:
        return len(self.names)

    @property
    def k(self) -> int:
        return int(self.neighbors.shape[1])

    def rois(self, i: int) -> np.ndarray:
        return self.roi_boxes[self.roi_offsets[i]:self.roi_offsets[i + 1]]

    def pairs(self, i: int, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(query_box, key_box, score)`` of image ``i`` with its ``rank``-th neighbour."""
        a, b = self.pair_offsets[i * self.k + rank], self.pair_offsets[i * self.k + rank + 1]
        return self.query_box[a:b], self.key_box[a:b], self.score[a:b]

    def save(self, workdir: Path) -> None:
        """Write all files; the JSON (completion marker) last."""
        atomic_savez(workdir / KNN_FILE, neighbors=self.neighbors.astype(np.int32),
                     similarity=self.similarity.astype(np.float32), cache_key=np.asarray(self.knn_cache_key))
        atomic_savez(workdir / ROIS_FILE, boxes=self.roi_boxes.astype(np.int32),
                     offsets=self.roi_offsets.astype(np.int64), sizes=self.sizes.astype(np.int32))
        atomic_savez(workdir / PAIRS_FILE, offsets=self.pair_offsets.astype(np.int64),
                     query_box=self.query_box.astype(np.int32), key_box=self.key_box.astype(np.int32),
                     score=self.score.astype(np.float32))
        atomic_write_json(workdir / META_FILE, {"schema": SCHEMA_VERSION, "names": self.names,
                                                "params": self.params, "summary": self.summary},
                          indent=1, sort_keys=True)

    @classmethod
    def load(cls, workdir: Path) -> "Correspondence":
        meta_path = Path(workdir) / META_FILE
        if not meta_path.is_file():
            raise DataError(f"{meta_path}: missing (stage 'correspondence' has not finished)")
        meta = json.loads(meta_path.read_text())
        if meta.get("schema") != SCHEMA_VERSION:
            raise DataError(f"{meta_path}: schema {meta.get('schema')!r}, expected {SCHEMA_VERSION}")
        knn = _load(Path(workdir) / KNN_FILE, ("neighbors", "similarity"), ("cache_key",))
        knn_key = str(knn["cache_key"]) if "cache_key" in knn else ""
        rois = _load(Path(workdir) / ROIS_FILE, ("boxes", "offsets", "sizes"))
        pairs = _load(Path(workdir) / PAIRS_FILE, ("offsets", "query_box", "key_box", "score"))
        out = cls(names=list(meta["names"]), neighbors=knn["neighbors"], similarity=knn["similarity"],
                  roi_boxes=rois["boxes"], roi_offsets=rois["offsets"], sizes=rois["sizes"],
                  pair_offsets=pairs["offsets"], query_box=pairs["query_box"], key_box=pairs["key_box"],
                  score=pairs["score"], params=meta.get("params", {}), summary=meta.get("summary", {}),
                  knn_cache_key=knn_key)
        out.validate(meta_path.parent)
        return out

    def validate(self, where: Path) -> None:
        """Shape and index checks; a :class:`DataError` naming the folder on failure."""
        n, k = self.num_images, self.neighbors.shape[1] if self.neighbors.ndim == 2 else -1
        problems = []
        if self.neighbors.shape != (n, k) or k < 1:
            problems.append(f"neighbors shape {self.neighbors.shape}, expected ({n}, K>=1)")
        elif n and (self.neighbors.min() < 0 or self.neighbors.max() >= n):
            problems.append("neighbor index out of range")
        if len(self.roi_offsets) != n + 1 or np.any(np.diff(self.roi_offsets) < 1):
            problems.append("rois offsets must have N+1 entries and give every image >= 1 box")
        if len(self.pair_offsets) != n * max(k, 0) + 1 or np.any(np.diff(self.pair_offsets) < 1):
            problems.append("pairs offsets must have N*K+1 entries and give every couple >= 1 pair")
        if self.sizes.shape != (n, 2):
            problems.append(f"sizes shape {self.sizes.shape}, expected ({n}, 2)")
        if problems:
            raise DataError(f"{where}: malformed ORL correspondence files: {'; '.join(problems)}")
