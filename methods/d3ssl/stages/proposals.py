"""Stage 1 of D3SSL: object proposals for every pretraining image.

Recipe section ``proposals``:

- ``source: selective_search`` (SoCo / D3SSL): OpenCV ximgproc selective search in
  ``mode`` (``fast``), computed once and cached in chunks (shared implementation in
  :mod:`harness.pretrain.selective_search`), then SoCo's filter: both sides at least
  ``min_size`` px, aspect ratio at most ``max_aspect``, ``sqrt(box area / image area)``
  within ``size_range``; the first ``max_boxes`` survivors in selective-search order.
- ``source: annotations``: the ground-truth boxes of ``coco/annotations/
  instances_train2017.json`` (on the synthetic benchmark: the generator's object boxes),
  with the same filter.

Output: ``proposals.json`` in the stage's workdir, ``{"source": ..., "boxes": {image
path relative to the data root: [[x0, y0, x1, y1], ...] normalised to [0, 1]}}``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.core.dev_run import head, item_report
from harness.core.config_section import checked_section, field_names
from harness.api import StageContext
from harness.core.atomic import atomic_write_json
from harness.core.errors import ConfigError, DataError

PROPOSALS_FILE = "proposals.json"
SOURCES = ("selective_search", "annotations")


@dataclass(frozen=True)
class ProposalCfg:
    source: str = "selective_search"
    mode: str = "fast"
    max_side: int | None = None
    min_size: int = 32
    max_aspect: float = 3.0
    size_range: tuple[float, float] = (0.3, 0.8)
    max_boxes: int = 100
    workers: int = 1
    chunk_size: int = 64

    @classmethod
    def from_cfg(cls, d: dict[str, Any] | None) -> "ProposalCfg":
        d = checked_section(d, field_names(cls), "recipe section 'proposals'")
        if "size_range" in d:
            d["size_range"] = tuple(float(v) for v in d["size_range"])
        cfg = cls(**d)
        if cfg.source not in SOURCES:
            raise ConfigError(f"proposals.source must be one of {SOURCES}, got {cfg.source!r}")
        return cfg


def filter_boxes(boxes_xywh: np.ndarray, width: int, height: int, cfg: ProposalCfg) -> np.ndarray:
    """SoCo's proposal filter on ``(n, 4)`` ``x, y, w, h`` pixel boxes, order kept;
    returns normalised ``(k, 4)`` ``x0, y0, x1, y1`` (at most ``cfg.max_boxes``)."""
    b = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    w, h = b[:, 2], b[:, 3]
    ok = (w >= cfg.min_size) & (h >= cfg.min_size)
    ok &= (w <= cfg.max_aspect * h) & (h <= cfg.max_aspect * w)
    rel = np.sqrt(np.clip(w * h, 0, None) / float(width * height))
    ok &= (rel >= cfg.size_range[0]) & (rel <= cfg.size_range[1])
    kept = b[ok][: cfg.max_boxes]
    out = np.stack([kept[:, 0] / width, kept[:, 1] / height, (kept[:, 0] + kept[:, 2]) / width,
                    (kept[:, 1] + kept[:, 3]) / height], axis=1) if len(kept) else np.zeros((0, 4))
    return np.clip(out, 0.0, 1.0)


def _from_selective_search(paths: Sequence[Path], names: Sequence[str], cfg: ProposalCfg, workdir: Path,
                           ctx: StageContext) -> dict[str, list[list[float]]]:
    from harness.pretrain.selective_search import compute_proposals, load_proposals

    cache = workdir / "selective_search"
    compute_proposals(paths, names, cache, mode=cfg.mode, max_side=cfg.max_side, chunk_size=cfg.chunk_size,
                      workers=cfg.workers, seed=0, progress=ctx.progress)
    raw, sizes = load_proposals(cache, names)
    return {name: filter_boxes(b, int(s[0]), int(s[1]), cfg).round(5).tolist()
            for name, b, s in zip(names, raw, sizes)}


def _from_annotations(data_root: Path, names: Sequence[str], cfg: ProposalCfg) -> dict[str, list[list[float]]]:
    from harness.data.coco import read_coco

    ds = read_coco(data_root, "train2017")
    by_name: dict[str, list[list[float]]] = {}
    for im in ds.images:
        rel = str(Path(im.path).resolve().relative_to(Path(data_root).resolve()))
        boxes = np.array([o.bbox for o in im.objects if not o.iscrowd], dtype=np.float64).reshape(-1, 4)
        by_name[rel] = filter_boxes(boxes, im.width, im.height, cfg).round(5).tolist()
    missing = [n for n in names if n not in by_name]
    if missing:
        raise DataError(f"{ds.ann_file}: no entry for {len(missing)} training image(s), e.g. {missing[0]}")
    return {n: by_name[n] for n in names}


def run_proposals(ctx: StageContext) -> dict[str, Any]:
    """Write ``proposals.json`` (skipped when it already exists: the stage is resumable).
    Selective search runs on the CPUs of rank 0 alone (its ``workers`` processes); the other
    ranks of a multi-process job end at once instead of repeating it."""
    from harness.pretrain.data import DataConfig, list_scene_images

    if ctx.world.get("rank", 0) != 0:
        return {}
    dev: dict[str, float] = {}
    cfg = ProposalCfg.from_cfg(ctx.cfg.get("proposals"))
    workdir = Path(ctx.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / PROPOSALS_FILE
    if not out.is_file():
        every = list_scene_images(ctx.data_root, DataConfig.from_cfg(ctx.cfg.get("data")).dirs)
        paths = head(every, ctx.dev_run)
        started = time.perf_counter()
        names = [str(p.relative_to(ctx.data_root)) for p in paths]
        if cfg.source == "selective_search":
            boxes = _from_selective_search(paths, names, cfg, workdir, ctx)
        else:
            boxes = _from_annotations(ctx.data_root, names, cfg)
        atomic_write_json(out, {"source": cfg.source, "boxes": boxes})
        if ctx.dev_run:
            dev = item_report(time.perf_counter() - started, len(paths), len(every))
    data = load_proposals_file(out)
    counts = [len(b) for b in data.values()]
    return {"images": len(counts), "boxes_per_image": float(np.mean(counts)) if counts else 0.0,
            "images_without_boxes": float(sum(c == 0 for c in counts)), **dev}


def load_proposals_file(path: Path) -> dict[str, np.ndarray]:
    """``proposals.json`` -> ``{relative image path: float32 (n, 4) normalised boxes}``."""
    try:
        data = json.loads(Path(path).read_text())
        boxes = data["boxes"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a D3SSL proposals file (expected JSON with a 'boxes' mapping): {exc}") from exc
    return {k: np.asarray(v, dtype=np.float32).reshape(-1, 4) for k, v in boxes.items()}


class ProposalMeta:
    """Per-image metadata hook for :class:`harness.pretrain.data.SceneImages`:
    ``{"boxes": (n, 4) normalised}`` looked up by the image's path under the data root."""

    def __init__(self, boxes: dict[str, np.ndarray], data_root: Path) -> None:
        self.boxes, self.data_root = boxes, Path(data_root)

    def __call__(self, index: int, path: Path) -> dict[str, Any]:
        key = str(Path(path).relative_to(self.data_root))
        if key not in self.boxes:
            raise DataError(f"{path}: no proposals for this image (re-run the proposals stage)")
        return {"boxes": self.boxes[key]}

