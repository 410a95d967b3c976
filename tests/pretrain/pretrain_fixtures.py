"""Helpers for the pretraining tests: small scene folders and small recipes."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("pretrain_runner.py")


def write_scenes(root: Path, n: int = 16, seed: int = 0) -> Path:
    """``n`` JPEG scenes of varied sizes (coloured rectangles on a gradient) in coco/train2017."""
    rng = np.random.default_rng(seed)
    folder = root / "coco" / "train2017"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h, w = int(rng.integers(36, 60)), int(rng.integers(40, 80))
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * 255 // w), (yy * 255 // h), np.full_like(xx, int(rng.integers(0, 255)))], -1)
        for _ in range(int(rng.integers(1, 4))):
            y0, x0 = int(rng.integers(0, h - 10)), int(rng.integers(0, w - 10))
            img[y0:y0 + int(rng.integers(6, 20)), x0:x0 + int(rng.integers(6, 20))] = rng.integers(0, 255, 3)
        Image.fromarray(img.astype(np.uint8)).save(folder / f"{i + 1:012d}.jpg", quality=95)
    return root


BASE = {
    "pretrain_data": "synthetic",
    "epochs": 2,
    "arch": "resnet18",
    "zero_init_residual": True,
    "batch_size": 8,
    "data": {"short_side": 40, "cache": True},
    "augment": {"size": 32, "blur_kernel": 5, "blur_sigma": [0.1, 0.5]},
    "optimizer": {"name": "sgd", "lr": 0.3, "base_batch": 256, "momentum": 0.9, "weight_decay": 1.0e-4},
    "schedule": {"name": "cosine", "warmup_epochs": 0, "min_lr": 0.0, "unit": "step"},
    "loop": {"checkpoint_every": 2, "log_every": 1},
    "moco": {"dim": 32, "hidden": 64, "queue": 16, "momentum": 0.99, "temperature": 0.2},
    "byol": {"dim": 32, "hidden": 64, "pred_hidden": 64, "momentum": 0.99},
    "densecl": {"dim": 32, "hidden": 64, "queue": 16, "momentum": 0.99, "temperature": 0.2},
}


def small_recipe(**overrides: Any) -> dict[str, Any]:
    """A copy of :data:`BASE` with top-level keys replaced (dicts merged one level deep)."""
    cfg = copy.deepcopy(BASE)
    for k, v in overrides.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    return cfg


def stage_context(workdir: Path, data_root: Path, cfg: dict[str, Any], method: str = "mocov2", seed: int = 0):
    from harness.api import StageContext

    return StageContext(name="pretrain", cfg=cfg, workdir=workdir, data_root=data_root, seed=seed, device="cpu",
                        preset="tiny", method=method, recipe="test", config_hash="test")


def run_stage_process(method: str, data_root: Path, workdir: Path, cfg: dict[str, Any], hang_at: int | None = None,
                      nproc: int = 1, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    """Run ``harness_methods.<method>.train:run`` in a child process (``torchrun`` when ``nproc > 1``)."""
    args = [str(RUNNER), method, str(data_root), str(workdir), json.dumps(cfg)]
    if hang_at is not None:
        args += ["--hang-at", str(hang_at)]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_port", str(29500 + os.getpid() % 1000), *args]
    else:
        cmd = [sys.executable, *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_log(workdir: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in (workdir / "train_log.jsonl").read_text().splitlines() if ln.strip()]
