"""Selective-search proposals for every training image, in parallel, cached per chunk.

Proposals come from OpenCV's ``cv2.ximgproc.segmentation.createSelectiveSearchSegmentation``
(the contrib build of OpenCV), in ``fast`` or ``quality`` mode, on the full-resolution
image unless ``max_side`` asks for a down-scaled copy (boxes are always mapped back to
original pixels). OpenCV ranks the regions with its global RNG; it is re-seeded before
every image, so an image's proposals do not depend on which worker computed it or what
it computed before.

Cache layout (``cache_dir``):

- ``manifest.json``: the settings and the image list digest the chunks were computed
  with; a cache with another manifest is discarded.
- ``chunk_<c:06d>.npz`` for images ``[c*chunk_size, (c+1)*chunk_size)``: ``boxes`` int32
  ``(M, 4)`` raw proposals ``(x, y, w, h)`` in OpenCV's order, concatenated; ``offsets``
  int64 ``(n+1,)`` (image ``i`` of the chunk owns ``boxes[offsets[i]:offsets[i+1]]``);
  ``sizes`` int32 ``(n, 2)`` image ``(width, height)``; ``names`` str ``(n,)``.

Chunks are written to a temporary name and renamed, so a killed run leaves only whole
chunks and a new run computes only the missing ones.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import multiprocessing
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from harness.core.atomic import atomic_write_json
from harness.core.errors import ConfigError, DataError
from harness.core.atomic import atomic_savez

MANIFEST = "manifest.json"


def ximgproc_available() -> bool:
    """Whether the installed OpenCV is the contrib build (has ``cv2.ximgproc``)."""
    import cv2

    return hasattr(cv2, "ximgproc")


def _require_ximgproc() -> None:
    if not ximgproc_available():
        raise ConfigError("ORL selective search needs OpenCV's contrib build (cv2.ximgproc): "
                          "install opencv-contrib-python-headless and no other opencv package")


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)


def read_bgr(path: Path) -> np.ndarray:
    """Decode an image file to a uint8 BGR array; a clear error when it cannot be read."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"{path}: cannot be decoded as an image (expected a JPEG/PNG file)")
    return img


def selective_search(image_bgr: np.ndarray, *, mode: str = "fast", max_side: int | None = None,
                     seed: int = 0) -> np.ndarray:
    """Raw selective-search proposals of one BGR image as int32 ``(n, 4)`` ``(x, y, w, h)``."""
    import cv2

    _require_ximgproc()
    if mode not in ("fast", "quality"):
        raise ConfigError(f"selective search mode must be 'fast' or 'quality', got {mode!r}")
    height, width = image_bgr.shape[:2]
    scale = 1.0
    work = image_bgr
    if max_side and max(height, width) > max_side:
        scale = max_side / max(height, width)
        work = cv2.resize(image_bgr, (max(1, round(width * scale)), max(1, round(height * scale))),
                          interpolation=cv2.INTER_AREA)
    _libc().srand(ctypes.c_uint(seed))
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(work)
    if mode == "fast":
        ss.switchToSelectiveSearchFast()
    else:
        ss.switchToSelectiveSearchQuality()
    boxes = np.asarray(ss.process(), dtype=np.float64).reshape(-1, 4)
    if scale != 1.0:
        boxes = np.round(boxes / scale)
        boxes[:, 0] = np.clip(boxes[:, 0], 0, width - 1)
        boxes[:, 1] = np.clip(boxes[:, 1], 0, height - 1)
        boxes[:, 2] = np.clip(boxes[:, 2], 1, width - boxes[:, 0])
        boxes[:, 3] = np.clip(boxes[:, 3], 1, height - boxes[:, 1])
    return boxes.astype(np.int32)


def _compute_chunk(job: tuple[str, list[str], list[str], str, int | None, int]) -> tuple[str, int]:
    """Worker: selective search on one chunk of images, written atomically."""
    import cv2

    out, paths, names, mode, max_side, seed = job
    cv2.setNumThreads(1)
    all_boxes, offsets, sizes = [], [0], []
    for path in paths:
        img = read_bgr(Path(path))
        boxes = selective_search(img, mode=mode, max_side=max_side, seed=seed)
        all_boxes.append(boxes)
        offsets.append(offsets[-1] + len(boxes))
        sizes.append((img.shape[1], img.shape[0]))
    atomic_savez(Path(out), boxes=np.concatenate(all_boxes).astype(np.int32).reshape(-1, 4),
                  offsets=np.asarray(offsets, dtype=np.int64), sizes=np.asarray(sizes, dtype=np.int32),
                  names=np.asarray(names))
    return out, len(paths)


def _pool_context() -> multiprocessing.context.BaseContext:
    """``fork`` where available: workers run only OpenCV/numpy code, and unlike ``spawn``
    it never re-imports the parent's ``__main__`` (an unguarded script would re-run)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def chunk_path(cache_dir: Path, index: int) -> Path:
    return cache_dir / f"chunk_{index:06d}.npz"


def _digest(names: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def _prepare_cache(cache_dir: Path, manifest: dict) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / MANIFEST
    if path.is_file():
        if json.loads(path.read_text()) == manifest:
            return
        for stale in cache_dir.glob("chunk_*.npz"):
            stale.unlink()
    atomic_write_json(path, manifest, sort_keys=True)


def compute_proposals(paths: Sequence[Path], names: Sequence[str], cache_dir: Path, *, mode: str = "fast",
                      max_side: int | None = None, chunk_size: int = 16, workers: int = 1, seed: int = 0,
                      progress: Callable[[int, int], None] | None = None) -> int:
    """Fill ``cache_dir`` with the proposals of every image; returns how many images were
    computed now (0 when the cache was already complete).

    ``names`` identify the images (paths relative to the data root); ``workers > 1``
    uses a pool of worker processes, one chunk per task.
    """
    _require_ximgproc()
    if len(paths) != len(names):
        raise ValueError("paths and names must have the same length")
    if chunk_size < 1:
        raise ConfigError(f"selective_search.chunk_size must be >= 1, got {chunk_size}")
    manifest = {"mode": mode, "max_side": max_side, "chunk_size": chunk_size, "seed": seed,
                "num_images": len(names), "names_sha256": _digest(names)}
    _prepare_cache(cache_dir, manifest)
    n_chunks = (len(paths) + chunk_size - 1) // chunk_size
    jobs = []
    for c in range(n_chunks):
        out = chunk_path(cache_dir, c)
        if out.is_file():
            continue
        sl = slice(c * chunk_size, (c + 1) * chunk_size)
        jobs.append((str(out), [str(p) for p in paths[sl]], list(names[sl]), mode, max_side, seed))
    done = len(paths) - sum(len(j[1]) for j in jobs)
    if progress:
        progress(done, len(paths))
    if not jobs:
        return 0
    computed = 0
    if workers <= 1:
        for _, n in map(_compute_chunk, jobs):
            computed += n
            if progress:
                progress(done + computed, len(paths))
        return computed
    with _pool_context().Pool(min(workers, len(jobs))) as pool:
        for _, n in pool.imap_unordered(_compute_chunk, jobs):
            computed += n
            if progress:
                progress(done + computed, len(paths))
    return computed


def iter_proposals(cache_dir: Path, names: Sequence[str]) -> Iterator[tuple[np.ndarray, tuple[int, int]]]:
    """Per image, in order: raw proposals (int32 ``(n, 4)``) and ``(width, height)``.

    Reads one chunk at a time and checks that the cache holds exactly ``names``.
    """
    manifest_path = cache_dir / MANIFEST
    if not manifest_path.is_file():
        raise DataError(f"{manifest_path}: missing; selective search has not run")
    chunk_size = int(json.loads(manifest_path.read_text())["chunk_size"])
    for c in range((len(names) + chunk_size - 1) // chunk_size):
        path = chunk_path(cache_dir, c)
        if not path.is_file():
            raise DataError(f"{path}: missing selective-search chunk")
        with np.load(path) as data:
            if [str(n) for n in data["names"]] != list(names[c * chunk_size:(c + 1) * chunk_size]):
                raise DataError(f"{path}: holds other images than the current training list")
            offsets, boxes, sizes = data["offsets"], data["boxes"], data["sizes"]
        for i in range(len(offsets) - 1):
            yield boxes[offsets[i]:offsets[i + 1]], (int(sizes[i, 0]), int(sizes[i, 1]))


def load_proposals(cache_dir: Path, names: Sequence[str]) -> tuple[list[np.ndarray], np.ndarray]:
    """All raw proposals (list of int32 ``(n_i, 4)``) and image sizes ``(N, 2)`` ``(width, height)``."""
    items = list(iter_proposals(cache_dir, names))
    return [b for b, _ in items], np.array([s for _, s in items], dtype=np.int32).reshape(-1, 2)
