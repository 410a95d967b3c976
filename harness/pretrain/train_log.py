"""The pretraining log: windowed means of the step scalars, appended to
``train_log.jsonl`` and sent by rank 0 to the unit's tracking backends (TensorBoard events
in ``tensorboard/`` by default; W&B and MLflow through :mod:`harness.pretrain.trackers`),
and read back as a short loss curve for the stage's record."""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from harness.core.atomic import atomic_write_text
from harness.core.tracking import backends_of
from harness.pretrain import dist

LOG_FILE = "train_log.jsonl"
TENSORBOARD_DIR = "tensorboard"
CURVE_POINTS = 100


class TrainLog:
    """Averages scalars over a window; :meth:`flush` writes one record (rank 0 only when
    ``workdir`` is given). On resume, records and TensorBoard events after ``resume_step``
    are dropped, so a resumed run logs each step once there; W&B and MLflow runs start anew.

    ``tracking`` is the unit's (:func:`harness.core.tracking.run_tracking`; TensorBoard
    alone when empty), ``unit`` and ``config`` name the unit and its recipe to the trackers.
    """

    def __init__(self, workdir: Path | None, resume_step: int, tracking: Mapping[str, Any] | None = None,
                 unit: str = "pretrain", config: Mapping[str, Any] | None = None) -> None:
        self.path = workdir / LOG_FILE if workdir is not None else None
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.writer = None
        self.trackers = None
        if self.path is None:
            return
        if self.path.exists():
            keep = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln)["step"] <= resume_step]
            atomic_write_text(self.path, "".join(ln + "\n" for ln in keep))
        if "tensorboard" in backends_of(tracking or {}):
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(workdir / TENSORBOARD_DIR),
                                        purge_step=resume_step + 1 if resume_step else None)
        if set(backends_of(tracking or {})) - {"tensorboard"}:
            from harness.pretrain.trackers import Trackers

            self.trackers = Trackers(tracking or {}, unit, workdir, config or {})

    def add(self, out: dict[str, Any]) -> None:
        for k, v in out.items():
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                v = v.detach().float().reshape(())
                self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.count += 1

    def flush(self, record: dict[str, Any]) -> dict[str, Any]:
        """Average (over the window and the ranks), write, reset; returns the record."""
        if self.count == 0:
            return record
        keys = sorted(self.sums)
        vals = dist.all_reduce_mean(torch.stack([self.sums[k] for k in keys]) / self.count).tolist()
        record = {**record, **dict(zip(keys, vals))}
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        scalars = {f"pretrain/{k}": v for k, v in record.items() if k != "step" and isinstance(v, (int, float))}
        if self.writer is not None:
            for k, v in scalars.items():
                self.writer.add_scalar(k, v, record["step"])
            self.writer.flush()
        if self.trackers is not None:
            self.trackers.add_scalars(scalars, record["step"])
        self.sums, self.count = {}, 0
        return record

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.trackers is not None:
            self.trackers.close()


def loss_curve(workdir: Path, points: int = CURVE_POINTS) -> list[list[float]]:
    """``[[step, loss], ...]`` from a stage's ``train_log.jsonl``, thinned evenly to at most
    ``points`` (the last record always kept); empty when the stage wrote no log."""
    path = Path(workdir) / LOG_FILE
    if not path.is_file():
        return []
    recs = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    recs = [r for r in recs if isinstance(r.get("loss"), (int, float))]
    if len(recs) > points:
        idx = sorted({round(i * (len(recs) - 1) / (points - 1)) for i in range(points)})
        recs = [recs[i] for i in idx]
    return [[float(r["step"]), float(r["loss"])] for r in recs]
