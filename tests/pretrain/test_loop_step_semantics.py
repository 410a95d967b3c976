"""The pretraining loop's step logic on a model with a closed-form gradient: the
scheduled lr of each step, fresh gradients every step, the optimiser step before the
model's momentum update, the step's batch and random source, clipping, and the log."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn

from harness.pretrain.augment import StepRNG
from harness.pretrain.data import RawBatch, StepSampler
from harness.pretrain.loop import LoopConfig, train
from harness.pretrain.optim import OptimConfig, lr_at
from pretrain_fixtures import read_log, stage_context

TARGET = torch.tensor([0.3, 0.1, -0.2])


class _Quadratic(nn.Module):
    """Loss ``|w - TARGET|^2`` (gradient ``2 (w - TARGET)``); records what each call saw."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
        self.seen: list[dict[str, Any]] = []
        self.after: list[tuple[int, int, torch.Tensor]] = []

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        self.seen.append({"step": batch["step"], "w": self.w.detach().clone(), "ids": batch["ids"].tolist(),
                          "rng": (batch["rng"].seed, batch["rng"].step), "drawn": batch["drawn"]})
        return {"loss": (self.w - TARGET).pow(2).sum(), "extra": self.w.detach().sum()}

    def after_step(self, step: int, total: int) -> float:
        self.after.append((step, total, self.w.detach().clone()))
        return 0.5 + step / 100


def _batch_fn(raw: RawBatch, rng: StepRNG) -> dict[str, Any]:
    return {"ids": raw.index.clone(), "drawn": float(rng.rand(1)[0])}


def _run(tmp_path: Path, **loop: Any) -> tuple[_Quadratic, LoopConfig, dict[str, Any]]:
    data = [{"image": torch.full((3, 2, 2), i, dtype=torch.uint8), "index": i, "meta": {}} for i in range(8)]
    optim = OptimConfig(lr=0.2, base_batch=2, momentum=0.0, weight_decay=0.0, warmup_epochs=1, schedule="cosine")
    cfg = LoopConfig(epochs=2, batch_size=2, optim=optim, log_every=1, amp=False, channels_last=False, **loop)
    model = _Quadratic()
    out = train(stage_context(tmp_path / "work", tmp_path, {}, seed=3), model, data, cfg, _batch_fn)
    return model, cfg, out


def test_each_step_takes_a_fresh_gradient_at_the_scheduled_lr_before_the_momentum_update(tmp_path: Path) -> None:
    model, cfg, out = _run(tmp_path)
    total = 8  # 4 steps an epoch, 2 epochs
    lrs = [lr_at(cfg.optim, s, 4, 2, 2) for s in range(total)]
    assert len(set(lrs)) == 6 and lrs[0] < lrs[3] > lrs[-1]  # warm-up then cosine
    assert [s["step"] for s in model.seen] == list(range(total))
    assert [(a[0], a[1]) for a in model.after] == [(s, total) for s in range(total)]
    w = torch.tensor([1.0, -2.0, 0.5])
    for s in range(total):
        assert torch.allclose(model.seen[s]["w"], w, atol=1e-6), s
        w = w - lrs[s] * 2 * (w - TARGET)
        assert torch.allclose(model.after[s][2], w, atol=1e-6), s  # the momentum update sees the new weights
    assert torch.allclose(model.w.detach(), w, atol=1e-6)
    log = read_log(tmp_path / "work")
    assert [r["step"] for r in log] == list(range(1, total + 1))
    assert [r["lr"] for r in log] == pytest.approx(lrs, rel=1e-9)
    assert [r["momentum"] for r in log] == pytest.approx([0.5 + s / 100 for s in range(total)])
    assert [r["extra"] for r in log] == pytest.approx([float(s["w"].sum()) for s in model.seen], rel=1e-6)
    assert out["steps"] == total and out["loss"] == pytest.approx(log[-1]["loss"])


def test_each_step_sees_its_own_batch_and_random_source(tmp_path: Path) -> None:
    model, _, _ = _run(tmp_path)
    sampler = StepSampler(n=8, global_batch=2, seed=3, epochs=2)
    assert [s["ids"] for s in model.seen] == [sampler.global_batch_indices(s) for s in range(8)]
    assert [s["rng"] for s in model.seen] == [(3, s) for s in range(8)]
    assert [s["drawn"] for s in model.seen] == [float(StepRNG(3, s).rand(1)[0]) for s in range(8)]


def test_gradient_clipping_bounds_the_gradient_norm(tmp_path: Path) -> None:
    model, cfg, _ = _run(tmp_path, grad_clip=0.5)
    w = torch.tensor([1.0, -2.0, 0.5])
    for s in range(8):
        g = 2 * (w - TARGET)
        g = g * min(1.0, 0.5 / (g.norm().item() + 1e-6))
        w = w - lr_at(cfg.optim, s, 4, 2, 2) * g
        assert torch.allclose(model.after[s][2], w, atol=1e-6), s
