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
               "images_without_box": sum(c == 0 for c in counts) / len(counts),
               "images_per_s": computed / elapsed if computed and elapsed > 0 else 0.0,
               "device": str(device), "torch_threads": torch.get_num_threads()}
    (workdir / SUMMARY_FILE).write_text(json.dumps({**summary, "cam": cam.__dict__}, indent=1, sort_keys=True))
    ctx.progress(n_chunks, n_chunks)
    if ctx.dev_run:
        summary.update(item_report(elapsed * info.world_size, computed * info.world_size, len(every)))
    return {k: v for k, v in summary.items() if isinstance(v, (int, float))}
