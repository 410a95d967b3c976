"""Run one pretraining stage in this process (used by the kill/resume and DDP tests).

    python pretrain_runner.py METHOD DATA_ROOT WORKDIR CFG_JSON [--hang-at STEP]

``--hang-at STEP``: after step STEP (and its checkpoint, if one is due) write
``WORKDIR/hung`` and sleep, so the parent can SIGKILL the process at a known point.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from harness.api import StageContext
from harness.core.registry import import_entry


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("method")
    ap.add_argument("data_root")
    ap.add_argument("workdir")
    ap.add_argument("cfg")
    ap.add_argument("--hang-at", type=int)
    a = ap.parse_args()
    rank = int(os.environ.get("RANK", 0))
    random.seed(rank)
    np.random.seed(rank)
    torch.manual_seed(rank)
    torch.set_num_threads(1)
    workdir = Path(a.workdir)

    def progress(step: int, total: int, **_: object) -> None:
        if a.hang_at is not None and step == a.hang_at:
            (workdir / "hung").write_text(str(step))
            time.sleep(600)

    ctx = StageContext(name="pretrain", cfg=json.loads(a.cfg), workdir=workdir, data_root=Path(a.data_root), seed=0,
                       device="cpu", preset="tiny", progress=progress, method=a.method, recipe="test",
                       config_hash="test", world={"rank": rank, "world_size": int(os.environ.get("WORLD_SIZE", 1)),
                                                  "local_rank": int(os.environ.get("LOCAL_RANK", 0))})
    out = import_entry(f"harness_methods.{a.method}.stages:run")(ctx)
    if rank == 0:
        (workdir / "summary.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main()
