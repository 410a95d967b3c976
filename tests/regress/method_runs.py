"""Short runs of a shipped method's own stages on small synthetic COCO scenes, for checks
that every method learns what it claims (its signature) within the test budget."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import torch

from harness.api import StageContext
from harness.core import registry
from harness.data.synthetic.coco import write_coco
from harness.data.synthetic.sizes import DEFAULT_BIAS, TINY

SIDE = 32  # every view and patch, in pixels


def write_scenes(root: Path, n: int = 64, seed: int = 0) -> Path:
    """``n`` synthetic COCO train2017 scenes (objects on textured backgrounds, with boxes)."""
    write_coco(root, seed, dataclasses.replace(TINY, coco=(n, 1)), DEFAULT_BIAS)
    return root


def _shrink_views(augment: dict[str, Any]) -> None:
    for key in ("view1", "view2"):
        if isinstance(augment.get(key), dict) and "size" in augment[key]:
            augment[key]["size"] = SIDE
    augment.update(size=SIDE, blur_kernel=3)


def short_recipe(method: str, epochs: int, batch_size: int = 16) -> dict[str, Any]:
    """The method's ``tiny`` recipe at ``SIDE`` px, ``epochs`` epochs, batch ``batch_size``,
    without checkpoints or mixed precision; every other key as shipped."""
    cfg = copy.deepcopy(registry.load_recipe(method, "tiny"))
    cfg.update(epochs=epochs, batch_size=batch_size)
    cfg["data"] = {**cfg["data"], "short_side": 40, "num_workers": 0}
    cfg["loop"] = {**cfg.get("loop", {}), "checkpoint_every": 0, "log_every": 1, "amp": False,
                   "channels_last": False, "sync_bn": False}
    _shrink_views(cfg["augment"])
    if "img_size" in cfg:
        cfg["img_size"] = SIDE
    if "vanilla" in cfg:
        cfg["vanilla"] = {**cfg["vanilla"], "epochs": epochs}
    if "cam" in cfg:
        cfg["cam"].update(image_size=SIDE, batch_size=32, chunk=64)
    if "correspondence" in cfg:
        cfg["correspondence"].update(knn_resize=36, knn_crop=SIDE, min_size=6, roi_size=SIDE, ss_workers=1)
    if "orl" in cfg:
        cfg["orl"].update(patch_size=SIDE // 2)
    if "roi" in cfg:
        cfg["roi"]["size"] = 2
    return cfg


def run_stages(method: str, cfg: dict[str, Any], root: Path, work: Path, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Run every stage of ``method`` in order, in this process; their summaries by name."""
    out: dict[str, dict[str, Any]] = {}
    upstream: dict[str, Path] = {}
    for stage in registry.load_method(method).stages(cfg):
        ctx = StageContext(name=stage.name, cfg=stage.view(copy.deepcopy(cfg)), workdir=work / stage.name,
                           data_root=root, seed=seed, device="cpu", preset="tiny", method=method,
                           recipe="short", upstream=dict(upstream), config_hash=f"short-{method}")
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(seed)
        out[stage.name] = registry.import_entry(stage.run)(ctx)
        upstream[stage.name] = ctx.workdir
    return out
