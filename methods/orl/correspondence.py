"""ORL stage 2: correspondence discovery, from images and a stage-1 model to RoI pairs.

1. kNN image retrieval: L2-normalised projector embeddings of resize/centre-crop views,
   exact cosine top-``k`` over the whole training set (self excluded), on ``device``.
2. Selective search (OpenCV, parallel worker processes, cached per chunk).
3. Proposal filtering: min side, max aspect ratio, greedy IoU de-duplication, first N.
4. RoI embeddings: every filtered proposal of every image, cropped and resized, through
   the stage-1 backbone (avgpool, L2); computed ONCE per image and stored per chunk.
5. RoI-pair retrieval: for each image and each of its neighbours, the top fraction
   (at least one) of (own RoI, neighbour RoI) pairs by cosine, batched over images.

Every step is resumable: kNN and selective-search results, and RoI embeddings, are
cached in the workdir; a rerun skips what exists. Outputs follow :mod:`.artifacts`.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from harness.core.config_section import checked_section, field_names
from harness.core.errors import ConfigError
from harness.core.atomic import atomic_savez
from harness_methods.orl.artifacts import KNN_FILE, Correspondence
from harness_methods.orl.boxes import filter_proposals
from harness_methods.orl.embed import image_embeddings, roi_embeddings
from harness_methods.orl.retrieval import knn_search, top_pairs
from harness_methods.orl.roi_store import RoIEmbeddingStore
from harness.pretrain.selective_search import compute_proposals, iter_proposals

PhaseProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CorrespondenceConfig:
    """The recipe's ``correspondence`` section (defaults: the published COCO settings)."""

    k: int = 10
    knn_resize: int = 256
    knn_crop: int = 224
    knn_batch_size: int = 256
    ss_mode: str = "fast"
    ss_max_side: int | None = None
    ss_chunk_size: int = 16
    ss_workers: int | None = None  # None: every CPU this process may use
    min_size: int | None = 96
    max_aspect: float | None = 3.0
    iou_thr: float | None = 0.5
    top_n: int = 100
    roi_size: int = 224
    roi_images_per_batch: int = 4
    roi_dtype: str = "float16"
    roi_chunk_size: int = 256
    pair_ratio: float = 0.1
    loader_workers: int = 0

    @classmethod
    def from_cfg(cls, d: dict[str, Any] | None) -> "CorrespondenceConfig":
        d = checked_section(d, field_names(cls), "recipe section 'correspondence'")
        cfg = cls(**d)
        if cfg.k < 1 or cfg.top_n < 1 or not 0 < cfg.pair_ratio <= 1:
            raise ConfigError("correspondence: k and top_n must be >= 1 and pair_ratio in (0, 1]")
        if cfg.roi_dtype not in ("float16", "float32"):
            raise ConfigError(f"correspondence.roi_dtype must be float16 or float32, got {cfg.roi_dtype!r}")
        return cfg

    @property
    def workers(self) -> int:
        if self.ss_workers:
            return self.ss_workers
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _digest(obj: Any) -> str:
    h = hashlib.sha256()
    if isinstance(obj, np.ndarray):
        h.update(np.ascontiguousarray(obj).tobytes())
    else:
        h.update("\n".join(map(str, obj)).encode())
    return h.hexdigest()


def knn_cache_key(names: Sequence[str], model_id: str, cfg: CorrespondenceConfig) -> str:
    """Digest of what the neighbours depend on: images, stage-1 model, kNN settings."""
    return _digest([*names, model_id, cfg.k, cfg.knn_resize, cfg.knn_crop])


def nearest_images(backbone: nn.Module, projector: nn.Module, paths: Sequence[Path], names: Sequence[str],
                   workdir: Path, cfg: CorrespondenceConfig, device: str, model_id: str = "",
                   progress: PhaseProgress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Step 1, cached in ``knn.npz``: ``(neighbors (N, K) int, similarity (N, K))``."""
    path = workdir / KNN_FILE
    key = knn_cache_key(names, model_id, cfg)
    if path.is_file():
        with np.load(path) as data:
            if "cache_key" in data.files and str(data["cache_key"]) == key:
                return data["neighbors"], data["similarity"]
    if cfg.k >= len(paths):
        raise ConfigError(f"correspondence.k={cfg.k} needs more than {cfg.k} training images, "
                          f"found {len(paths)}")
    feats = image_embeddings(backbone, projector, paths, resize=cfg.knn_resize, crop=cfg.knn_crop,
                             batch_size=cfg.knn_batch_size, device=device, workers=cfg.loader_workers,
                             progress=(lambda s, t: progress("knn", s, t)) if progress else None)
    idx, sim = knn_search(feats, cfg.k)
    neighbors, similarity = idx.cpu().numpy().astype(np.int32), sim.cpu().numpy().astype(np.float32)
    atomic_savez(path, neighbors=neighbors, similarity=similarity, cache_key=np.asarray(key))
    return neighbors, similarity


def filtered_rois(cache_dir: Path, names: Sequence[str], cfg: CorrespondenceConfig
                  ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Step 3, streamed over the selective-search cache: ``(RoIs per image, sizes (N, 2),
    raw proposal counts (N,))``."""
    rois, sizes, n_raw = [], [], []
    for boxes, size in iter_proposals(cache_dir, names):
        rois.append(filter_proposals(boxes, size, min_size=cfg.min_size, max_aspect=cfg.max_aspect,
                                     iou_thr=cfg.iou_thr, top_n=cfg.top_n))
        sizes.append(size)
        n_raw.append(len(boxes))
    return rois, np.array(sizes, dtype=np.int32).reshape(-1, 2), np.array(n_raw)


def roi_pairs(store: RoIEmbeddingStore, roi_boxes: np.ndarray, roi_offsets: np.ndarray, neighbors: np.ndarray,
              ratio: float,
              device: str, max_elements: int = 1 << 27,
              progress: Callable[[int, int], None] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Step 5: ``(offsets (N*K+1,), query_box, key_box, score)`` in :mod:`.artifacts` layout.

    ``roi_boxes`` / ``roi_offsets``: the filtered proposals of all images, flat (the
    order the store's embeddings follow).
    """
    n, k = neighbors.shape
    counts = torch.as_tensor(store.counts)
    p = store.max_rois
    dim = store.gather(np.zeros(1, dtype=np.int64)).shape[-1]
    batch = max(1, max_elements // max(1, (k + 1) * p * dim + k * p * p))
    per_couple: list[np.ndarray] = []
    q_boxes, k_boxes, scores = [], [], []
    for start in range(0, n, batch):
        idx = np.arange(start, min(n, start + batch))
        nb = neighbors[idx].astype(np.int64)
        query = torch.from_numpy(store.gather(idx)).to(device)
        keys = torch.from_numpy(store.gather(nb)).to(device)
        couple, qi, ki, val = (t.cpu().numpy() for t in top_pairs(
            query, counts[idx].to(device), keys, counts[nb].to(device), ratio))
        per_couple.append(np.bincount(couple, minlength=len(idx) * k))
        q_boxes.append(roi_boxes[roi_offsets[idx[couple // k]] + qi])
        k_boxes.append(roi_boxes[roi_offsets[nb.reshape(-1)[couple]] + ki])
        scores.append(val)
        if progress:
            progress(int(idx[-1]) + 1, n)
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(per_couple))]).astype(np.int64)
    return (offsets, np.concatenate(q_boxes).astype(np.int32), np.concatenate(k_boxes).astype(np.int32),
            np.concatenate(scores).astype(np.float32))


def build_correspondence(backbone: nn.Module, projector: nn.Module, paths: Sequence[Path], names: Sequence[str],
                         workdir: Path, cfg: CorrespondenceConfig, *, device: str, model_id: str = "",
                         progress: PhaseProgress | None = None, log: Any = None) -> Correspondence:
    """Run steps 1-5 (resuming from whatever the workdir holds) and save the outputs."""
    workdir.mkdir(parents=True, exist_ok=True)
    phase = (lambda name: (lambda s, t: progress(name, s, t))) if progress else (lambda name: None)
    neighbors, similarity = nearest_images(backbone, projector, paths, names, workdir, cfg, device, model_id,
                                           progress)
    computed = compute_proposals(paths, names, workdir / "ss", mode=cfg.ss_mode, max_side=cfg.ss_max_side,
                                 chunk_size=cfg.ss_chunk_size, workers=cfg.workers,
                                 progress=phase("selective_search"))
    if log is not None:
        log.info("selective search: %d images computed now, %d taken from the cache", computed,
                 len(paths) - computed)
    rois, sizes, n_raw = filtered_rois(workdir / "ss", names, cfg)
    roi_flat = np.concatenate(rois)
    roi_offsets = np.concatenate([[0], np.cumsum([len(r) for r in rois])]).astype(np.int64)
    store = RoIEmbeddingStore(workdir / "roi_emb", [len(r) for r in rois], cfg.roi_chunk_size, manifest={
        "names_sha256": _digest(names), "rois_sha256": _digest(roi_flat), "roi_size": cfg.roi_size,
        "dtype": cfg.roi_dtype, "model": model_id})

    def embed(image_range: range) -> list[np.ndarray]:
        feats = roi_embeddings(backbone, [paths[i] for i in image_range], [rois[i] for i in image_range],
                               size=cfg.roi_size, images_per_batch=cfg.roi_images_per_batch, device=device,
                               workers=cfg.loader_workers)
        return [f.numpy() for f in feats]

    store.fill(embed, cfg.roi_dtype, progress=phase("roi_embed"))
    offsets, q_box, k_box, score = roi_pairs(store, roi_flat, roi_offsets, neighbors, cfg.pair_ratio, device,
                                             progress=phase("pairs"))
    summary = {"num_images": len(names), "k": int(neighbors.shape[1]),
               "knn_similarity_mean": float(similarity.mean()),
               "proposals_raw_mean": float(n_raw.mean()), "proposals_kept_mean": float(len(roi_flat) / len(rois)),
               "pairs_total": int(len(score)), "pairs_per_couple_mean": float(len(score) / max(1, len(offsets) - 1)),
               "pair_score_mean": float(score.mean())}
    result = Correspondence(names=list(names), neighbors=neighbors, similarity=similarity, roi_boxes=roi_flat,
                            roi_offsets=roi_offsets,
                            sizes=sizes, pair_offsets=offsets, query_box=q_box, key_box=k_box, score=score,
                            params={**asdict(cfg), "model": model_id}, summary=summary,
                            knn_cache_key=knn_cache_key(names, model_id, cfg))
    result.save(workdir)
    return result
