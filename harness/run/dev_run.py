"""``harness run --fast-dev-run [N]``: every unit of the plan runs N steps of its real
configuration on the real data root, to find what fails and what the real run will cost
before it is launched.

The run's configuration gets ``dev_run: {steps: N, images: K}``; it is part of every unit
key (a dev run never shares a unit with a real run) and reaches each unit as
``ctx.dev_run``. What a unit does with it:

- a training stage (the shared loop) trains N steps at its real global batch on the
  first ``batch_size x N`` images, writes a checkpoint after the first step and resumes
  from it, then exports; it reports the warm seconds per step, images/s, the fraction of
  the step spent waiting for data, peak device memory and host RSS, and the steps of the
  real schedule (:func:`harness.core.dev_run.stage_report`);
- a stage that is not gradient training (CAM boxes, proposals, correspondence) works on
  the first K images (:func:`harness.core.dev_run.head`), CAM boxes on one inference batch;
- a dense (mmdet/mmseg) task trains N iterations with its schedule rescaled, precise BN
  on one batch, and tests on K images (:func:`task_overrides`);
- a frozen-feature task reads at most K images per split (at least two per class) and
  searches a 2-value L2 grid;
- an OpenImage-MINI task that builds its data from Open Images builds the first K images
  of each split's selection order (``build_images``,
  :func:`harness.data.openimage_mini.spec.prefix_spec`): the real classes and filters, a
  sampled prefix of the real build, in a cache folder of its own.

A plugin task whose work :func:`task_overrides` cannot bound is listed as not covered and
not run. Records carry ``role: dev-run``; no comparison reads them.
"""
from __future__ import annotations

import copy
import math
from typing import Any

from harness.core.errors import ConfigError

DEV_RUN_ROLE = "dev-run"
DEFAULT_STEPS = 2
DEFAULT_IMAGES = 8
DENSE = ("mmdet", "mmseg")
FROZEN_GRID = {"start": -4, "stop": 0, "num": 2}
DEV_VAL = 0.25  # validation fraction of a dev run's share of a training split
# frozen tasks whose data the dev run bounds (each reads ctx.dev_run through harness.core.dev_run.limit_images)
FROZEN = ("linear_probe", "knn", "bg_shift", "seg_probe", "instance_probe", "cam_localization", "bias_diagnostic",
          "coco_crop", "dist_shift", "oim_cls")


def parse_steps(text: str) -> int:
    """``--fast-dev-run N``: a positive integer."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1 or str(n) != text.strip():
        raise ConfigError(f"--fast-dev-run {text!r}: expected a positive integer number of steps (e.g. 2)")
    return n


def settings(steps: int, images: int) -> dict[str, int]:
    if steps < 1 or images < 1:
        raise ConfigError(f"--fast-dev-run needs steps >= 1 and images >= 1, got {steps} and {images}")
    return {"steps": int(steps), "images": int(images)}


def stage_settings(method_cfg: dict[str, Any], dev: dict[str, int]) -> dict[str, int]:
    """A stage's dev-run settings: K at least one real global batch per step of the largest
    ``batch_size`` in the recipe, so that a later training stage that reads what an
    earlier stage made (CAM boxes, ORL pairs, proposals) still has its real batch."""
    batches = [int(v) for v in _values(method_cfg, "batch_size") if isinstance(v, int) and not isinstance(v, bool)]
    return {**dev, "images": max([dev["images"], *(b * dev["steps"] for b in batches)])}


def _values(node: Any, key: str) -> list[Any]:
    if isinstance(node, dict):
        own = [node[key]] if key in node else []
        return own + [v for k, sub in node.items() if k != key for v in _values(sub, key)]
    return []


def covered(task: str, framework: str) -> str | None:
    """None when a dev run can bound the task's work, else why not."""
    if framework in DENSE or task in FROZEN:
        return None
    return "its work is not bounded by a dev run yet"


def task_overrides(task: str, framework: str, cfg: dict[str, Any], dev: dict[str, int]) -> dict[str, Any]:
    """The unit config of a task in a dev run (``cfg`` is not changed)."""
    n, k = dev["steps"], dev["images"]
    out = copy.deepcopy(cfg)
    if cfg.get("spec"):  # an OpenImage-MINI spec file: build a prefix of K images per split
        out["build_images"] = k
    if framework in DENSE:
        iters = int(cfg["iters"])
        scale = n / iters
        out["iters"] = n
        if "milestones" in cfg:  # the steps that still fall inside (0, N)
            out["milestones"] = sorted({m2 for m in cfg["milestones"] if 0 < (m2 := math.ceil(m * scale)) < n})
        if "warmup_iters" in cfg:  # at least one warm-up iteration, and one after it when N > 1
            out["warmup_iters"] = max(1, min(n - 1, math.ceil(int(cfg["warmup_iters"]) * scale)))
        out["checkpoint_interval"] = 1
        out["log_interval"] = 1
        if cfg.get("precise_bn_iters"):
            out["precise_bn_iters"] = 1
        out["test_images"] = k
        return out
    if "l2_grid" in cfg:
        out["l2_grid"] = dict(FROZEN_GRID)
    val = cfg.get("val_size")
    if isinstance(val, (int, float)) and not isinstance(val, bool) and (isinstance(val, int) or val < DEV_VAL):
        out["val_size"] = DEV_VAL  # a count, or a small fraction, may leave no validation image of K
    if "max_images" in cfg:
        out["max_images"] = min(int(cfg["max_images"] or k), k)
    if task == "bias_diagnostic":  # rendered scenes: K objects per set (at least 8, enough for its fits)
        out["coupling_objects"] = min(int(cfg["coupling_objects"]), max(8, k))
        out["position_objects"] = min(int(cfg["position_objects"]), max(32, 4 * k))
    return out


