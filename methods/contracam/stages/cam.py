"""Stage ``cam_boxes``: ContraCAM boxes and masks for every pretraining image.

Reads the vanilla model (``backbone.pth`` + ``heads.pth``) from the ``pretrain`` stage's
workdir and the image list of the second pretraining stage. Work is split into chunks of
``cam.chunk`` images (a multiple of the inference batch, so resuming never changes the
negatives); a chunk is done when ``chunks/boxes-<c>.json`` exists, which is written after
its masks. Under torchrun, rank ``r`` takes chunks ``c % world == r``.

Artifacts (schemas in :mod:`harness.cam.boxes`):

- ``boxes.json``: normalised ``xyxy`` boxes keyed by the image path relative to the data
  root (e.g. ``coco/train2017/000000000009.jpg``);
- ``masks/<same path>.png``: the soft CAM, 8-bit, ``cam.image_size`` square;
- ``cam_summary.json``: counts and settings.

Where the images are a COCO split with its annotations (COCO itself, the synthetic
benchmark), the summary also holds the stage's signature: ``signature_box_recall``, the %
of ground-truth objects (non-crowd, larger than ``cam.min_area`` of the image) that a CAM
box overlaps with IoU >= 0.5, and ``signature_box_recall_whole_image``, the same for one
whole-image box per image (the region an object-unaware crop draws from). Every summary
holds ``box_area_mean``, the mean fraction of an image its boxes cover (union; 1 for an
image without box, whose crop falls back to the whole image).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from harness.core.dev_run import head, item_report
from harness.api import StageContext
from harness.core.errors import DataError
from harness_methods.contracam.recipe import CamConfig, cam_config

BOXES_FILE = "boxes.json"
MASK_DIR = "masks"
CHUNK_DIR = "chunks"
SUMMARY_FILE = "cam_summary.json"


def image_keys(data_root: Path, paths: list[Path]) -> list[str]:
    """Image paths relative to the data root (POSIX), the keys of the boxes and masks."""
    root = Path(data_root).resolve()
    keys = []
    for p in paths:
        try:
            keys.append(Path(p).resolve().relative_to(root).as_posix())
        except ValueError as exc:
            raise DataError(f"{p}: pretraining image outside the data root {root}") from exc
    return keys


def compute_chunk(model: Any, paths: list[Path], keys: list[str], cam: CamConfig, workdir: Path,
                  device: str) -> dict[str, list[Any]]:
    """Masks (written to ``masks/``) and boxes of one chunk of images."""
    from harness.cam.boxes import boxes_from_mask, mask_path, save_mask
    from harness.cam.infer import cam_batches

    boxes: dict[str, list[Any]] = {}
    for batch in cam_batches(model, paths, cam.image_size, cam.batch_size, cam.iterations, device):
        for j, (mask, image) in enumerate(zip(batch.masks, batch.images)):
            key = keys[batch.start + j]
            save_mask(mask_path(workdir / MASK_DIR, key), mask)
            boxes[key] = boxes_from_mask(mask, image, crf=cam.crf, threshold=cam.threshold,
                                         min_area=cam.min_area, margin=cam.margin, binarize=cam.binarize,
                                         contours=cam.contours)
    return boxes


def box_area(boxes: list[Any], grid: int = 64) -> float:
    """The fraction of the image the union of normalised ``xyxy`` boxes covers (on a
    ``grid`` x ``grid`` raster); 1 without boxes (the crop then uses the whole image)."""
    import numpy as np

    if not boxes:
        return 1.0
    covered = np.zeros((grid, grid), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        covered[int(np.floor(y0 * grid)):int(np.ceil(y1 * grid)), int(np.floor(x0 * grid)):int(np.ceil(x1 * grid))] = True
    return float(covered.mean())


def annotated_split(data_root: Path, keys: list[str]) -> str | None:
    """The COCO split (``train2017``...) all ``keys`` lie in, if its annotation file exists."""
    folders = {tuple(k.split("/")[:2]) for k in keys}
    if len(folders) != 1:
        return None
    top, split = next(iter(folders))
    ann = Path(data_root) / top / "annotations" / f"instances_{split}.json"
    return split if top == "coco" and ann.is_file() else None


def box_signature(data_root: Path, split: str, boxes: dict[str, list[Any]], min_area: float) -> dict[str, float]:
    """Recall (%) of the split's ground-truth objects by ``boxes`` and by the whole image."""
    from harness.data.coco import read_coco
    from harness.tasks.cam_localization import found_boxes, object_boxes

    root = Path(data_root).resolve()
    found, whole, total = 0, 0, 0
    for image in read_coco(data_root, split).images:
        key = Path(image.path).resolve().relative_to(root).as_posix()
        if key not in boxes:
            continue
        gt = object_boxes(image, min_area)
        found += found_boxes(gt, boxes[key], 0.5)
        whole += found_boxes(gt, [(0.0, 0.0, 1.0, 1.0)], 0.5)
        total += len(gt)
    if not total:
        return {}
    return {"signature_box_recall": 100.0 * found / total, "signature_box_recall_whole_image": 100.0 * whole / total}


def run(ctx: StageContext) -> dict[str, Any]:
    """Compute (or resume) the boxes and masks; returns summary metrics."""
    import torch

    from harness.pretrain import dist
    from harness.pretrain.data import DataConfig, list_scene_images
    from harness.cam.boxes import load_boxes, save_boxes
    from harness_methods.contracam.recipe import base_recipe
    from harness.cam.infer import load_cam_model

    cam = cam_config(ctx.cfg)
    workdir = Path(ctx.workdir)
    (workdir / CHUNK_DIR).mkdir(parents=True, exist_ok=True)
    data_cfg = DataConfig.from_cfg(base_recipe(ctx.cfg, second_stage=True).get("data"))
    every = list_scene_images(ctx.data_root, data_cfg.dirs)
    paths = head(every, ctx.dev_run)
    keys = image_keys(ctx.data_root, paths)
    info = dist.init_from_env(ctx.device)
    device = dist.device_for(info, ctx.device)
    model = load_cam_model(Path(ctx.upstream["pretrain"]) / "backbone.pth", cam.expand_res, device, cam.numerator)

    n_chunks = (len(paths) + cam.chunk - 1) // cam.chunk
    t0, computed = time.perf_counter(), 0
    for c in range(n_chunks):
        chunk_file = workdir / CHUNK_DIR / f"boxes-{c:05d}.json"
        if c % info.world_size != info.rank or chunk_file.exists():
            continue
        lo, hi = c * cam.chunk, min((c + 1) * cam.chunk, len(paths))
        save_boxes(chunk_file, compute_chunk(model, paths[lo:hi], keys[lo:hi], cam, workdir, str(device)))
        computed += hi - lo
        ctx.progress(c + 1, n_chunks)
    elapsed = time.perf_counter() - t0
    dist.barrier()
    if not info.is_main:
        return {}
    merged: dict[str, Any] = {}
    for c in range(n_chunks):
        merged.update(load_boxes(workdir / CHUNK_DIR / f"boxes-{c:05d}.json"))
    missing = [k for k in keys if k not in merged]
    if missing:
        raise DataError(f"{workdir / CHUNK_DIR}: boxes missing for {len(missing)} images (e.g. {missing[:3]}); "
                        f"delete the chunk files to recompute them")
    save_boxes(workdir / BOXES_FILE, {k: merged[k] for k in keys})
    counts = [len(merged[k]) for k in keys]
    summary = {"images": len(keys), "boxes_per_image": sum(counts) / len(counts),
               "box_area_mean": sum(box_area(merged[k]) for k in keys) / len(keys),
               "images_without_box": sum(c == 0 for c in counts) / len(counts),
               "images_per_s": computed / elapsed if computed and elapsed > 0 else 0.0,
               "device": str(device), "torch_threads": torch.get_num_threads()}
    split = annotated_split(ctx.data_root, keys)
    if split is not None:
        summary.update(box_signature(ctx.data_root, split, merged, cam.min_area))
    (workdir / SUMMARY_FILE).write_text(json.dumps({**summary, "cam": cam.__dict__}, indent=1, sort_keys=True))
    ctx.progress(n_chunks, n_chunks)
    if ctx.dev_run:
        summary.update(item_report(elapsed * info.world_size, computed * info.world_size, len(every)))
    return {k: v for k, v in summary.items() if isinstance(v, (int, float))}
