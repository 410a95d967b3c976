"""ORL stage 2 (``correspondence``): the stage entry around :mod:`harness_methods.orl.correspondence`.

Loads the stage-1 model from ``ctx.upstream["byol"]`` (``backbone.pth`` + the
``projector`` of ``heads.pth``), lists the training images (recipe ``data.dirs``) and
builds the correspondence files (schema: :mod:`harness_methods.orl.artifacts`, ``SCHEMA.md``).
Under torchrun only rank 0 works (selective search uses a process pool of its own);
other ranks return at once.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.core.dev_run import head, item_report
from harness.api import BACKBONE_FILE, BACKBONE_META, StageContext
from harness.core.checkpoints import load_backbone
from harness.core.heads import load_heads
from harness.core.errors import CheckpointError, ConfigError
from harness.pretrain.data import DataConfig, list_scene_images
from harness_methods.orl.artifacts import META_FILE
from harness_methods.orl.correspondence import CorrespondenceConfig, build_correspondence


# Share of the stage's progress bar per phase (selective search dominates on CPU).
PHASE_SPAN = {"knn": (0, 10), "selective_search": (10, 75), "roi_embed": (75, 97), "pairs": (97, 100)}


def stage1_sha256(workdir: Path) -> str:
    """The sha256 of stage 1's backbone, from its sidecar."""
    meta = Path(workdir) / BACKBONE_META
    if not meta.is_file():
        raise CheckpointError(f"{meta}: missing; stage 'byol' has not exported its backbone")
    return str(json.loads(meta.read_text()).get("sha256", ""))


def load_stage1(workdir: Path, device: str) -> tuple[Any, Any]:
    """``(backbone, projector)`` exported by stage 1 into ``workdir``, on ``device``."""
    backbone = load_backbone(Path(workdir) / BACKBONE_FILE)
    heads = load_heads(Path(workdir))
    if "projector" not in heads:
        raise CheckpointError(f"{workdir}/heads.pth: no 'projector' head (found {sorted(heads)})")
    return backbone.to(device), heads["projector"].to(device)


def image_names(paths: list[Path], data_root: Path) -> list[str]:
    """Image paths relative to the data root (how the correspondence names images)."""
    return [Path(p).relative_to(data_root).as_posix() for p in paths]


def finished_summary(workdir: Path, names: list[str], cfg: CorrespondenceConfig,
                     model_id: str) -> dict[str, Any] | None:
    """The summary of a finished run with the same images, settings and model, else None."""
    path = Path(workdir) / META_FILE
    if not path.is_file():
        return None
    meta = json.loads(path.read_text())
    if meta.get("names") != names or meta.get("params") != {**asdict(cfg), "model": model_id}:
        return None
    return dict(meta.get("summary", {}))


def run(ctx: StageContext) -> dict[str, Any]:
    if ctx.world.get("rank", 0) != 0:
        return {}
    if "byol" not in ctx.upstream:
        raise ConfigError("ORL stage 'correspondence' needs the workdir of stage 'byol' in ctx.upstream")
    cfg = CorrespondenceConfig.from_cfg(ctx.cfg.get("correspondence"))
    data_cfg = DataConfig.from_cfg(ctx.cfg.get("data"))
    every = list_scene_images(ctx.data_root, data_cfg.dirs)
    paths = head(every, ctx.dev_run)
    names = image_names(paths, ctx.data_root)
    sha = stage1_sha256(ctx.upstream["byol"])
    done = finished_summary(Path(ctx.workdir), names, cfg, sha)
    if done is not None:
        ctx.log.info("correspondence already complete in %s", ctx.workdir)
        return done
    backbone, projector = load_stage1(ctx.upstream["byol"], ctx.device)

    def progress(phase: str, step: int, total: int) -> None:
        lo, hi = PHASE_SPAN[phase]
        ctx.progress(round(lo + (hi - lo) * step / max(total, 1)), 100, phase=phase, phase_step=step,
                     phase_total=total)

    started = time.perf_counter()
    result = build_correspondence(backbone, projector, paths, names, Path(ctx.workdir), cfg, device=ctx.device,
                                  model_id=sha, progress=progress, log=ctx.log)
    ctx.log.info("correspondence written to %s", Path(ctx.workdir) / META_FILE)
    dev = item_report(time.perf_counter() - started, len(paths), len(every)) if ctx.dev_run else {}
    return {**result.summary, **dev}
