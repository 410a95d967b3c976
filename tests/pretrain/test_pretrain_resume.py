"""Exact resume after SIGKILL, atomic checkpoints, non-finite loss handling."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from harness.core.errors import CheckpointError
from harness.pretrain.augment import TwoViewBatch
from harness.pretrain.data import SceneImages, list_scene_images
from harness.pretrain.loop import CHECKPOINT_FILE, LoopConfig, NonFiniteLossError, read_checkpoint, train
from harness.pretrain.train_log import TENSORBOARD_DIR, loss_curve
from pretrain_fixtures import read_log, run_stage_process, small_recipe, stage_context, write_scenes


def _final_model(workdir: Path) -> dict[str, torch.Tensor]:
    state = read_checkpoint(workdir / CHECKPOINT_FILE)
    assert state["step"] == state["total_steps"]
    return state["model"]


@pytest.mark.parametrize("method", ["mocov2", "byol", "densecl"])
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path: Path, method: str) -> None:
    root = write_scenes(tmp_path / "data", n=16)
    cfg = small_recipe(epochs=3)  # 6 steps, checkpoints every 2
    ref = run_stage_process(method, root, tmp_path / "ref", cfg)
    assert ref.returncode == 0, ref.stderr[-3000:]

    work = tmp_path / "killed"
    work.mkdir()
    proc = run_stage_process(method, root, work, cfg, hang_at=3, wait=False)  # checkpoint at 2, hang after 3
    deadline = time.time() + 300
    while not (work / "hung").exists():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline, "the stage never reached step 3"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert read_checkpoint(work / CHECKPOINT_FILE)["step"] == 2

    resumed = run_stage_process(method, root, work, cfg)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _final_model(tmp_path / "ref"), _final_model(work)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log = read_log(work)
    assert [r["loss"] for r in log] == [r["loss"] for r in read_log(tmp_path / "ref")]
    assert (work / "backbone.pth").is_file() and (work / "heads.pth").is_file()
    events = _tensorboard_scalars(work)  # each step once, though the run was killed after step 3
    assert {"pretrain/loss", "pretrain/lr", "pretrain/images_per_s", "pretrain/momentum"} <= set(events)
    assert events["pretrain/loss"] == [(r["step"], pytest.approx(r["loss"])) for r in log]
    assert loss_curve(work) == [[float(r["step"]), r["loss"]] for r in log]


def _tensorboard_scalars(workdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(workdir / TENSORBOARD_DIR))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


class _Tiny(nn.Module):
    """A cheap model whose loss can be made non-finite at a chosen step."""

    def __init__(self, nan_at: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.nan_at = nan_at

    def forward(self, batch: dict) -> dict:
        loss = (self.conv(batch["view1"]) - self.conv(batch["view2"])).pow(2).mean() + self.conv.weight.pow(2).sum()
        if batch["step"] == self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss}


def _loop_args(tmp_path: Path, **loop):
    root = write_scenes(tmp_path / "data", n=8)
    cfg = small_recipe(batch_size=4, epochs=3, loop={"checkpoint_every": 1, **loop})
    data = SceneImages(list_scene_images(root), 40, cache=True)
    return stage_context(tmp_path / "work", root, cfg), data, LoopConfig.from_recipe(cfg), TwoViewBatch.from_cfg(
        cfg["augment"])


def test_nonfinite_loss_raises_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    ctx, data, cfg, fn = _loop_args(tmp_path)
    with pytest.raises(NonFiniteLossError, match="step 4"):
        train(ctx, _Tiny(nan_at=3), data, cfg, fn)
    state = read_checkpoint(ctx.workdir / CHECKPOINT_FILE)
    assert state["step"] == 3
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_failed_checkpoint_write_leaves_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    ctx, data, cfg, fn = _loop_args(tmp_path)
    real_save = torch.save
    calls = {"n": 0}

    def flaky_save(obj, f, *a, **k):  # the third checkpoint write fails half-way (disk full)
        calls["n"] += 1
        if calls["n"] == 3:
            f.write(b"partial")
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", flaky_save)
    with pytest.raises(OSError):
        train(ctx, _Tiny(), data, cfg, fn)
    assert read_checkpoint(ctx.workdir / CHECKPOINT_FILE)["step"] == 2
    assert [p.name for p in ctx.workdir.iterdir() if "tmp" in p.name] == []
    monkeypatch.setattr(torch, "save", real_save)
    out = train(ctx, _Tiny(), data, cfg, fn)
    assert out["resumed_from"] == 2 and read_checkpoint(ctx.workdir / CHECKPOINT_FILE)["step"] == 6


def test_checkpoint_of_other_configuration_is_refused(tmp_path: Path) -> None:
    ctx, data, cfg, fn = _loop_args(tmp_path)
    train(ctx, _Tiny(), data, cfg, fn)
    other = LoopConfig.from_recipe(small_recipe(batch_size=4, epochs=4, loop={"checkpoint_every": 1}))
    with pytest.raises(CheckpointError, match="different configuration"):
        train(ctx, _Tiny(), data, other, fn)


def test_completed_stage_returns_stored_summary(tmp_path: Path) -> None:
    ctx, data, cfg, fn = _loop_args(tmp_path)
    first = train(ctx, _Tiny(), data, cfg, fn)
    again = train(ctx, _Tiny(), data, cfg, fn)
    assert again["resumed_from"] == 6 and again["loss"] == first["loss"]


class _RecentSteps:
    """A stateful batch function: its output depends on the steps it prepared before."""

    def __init__(self, views: TwoViewBatch) -> None:
        self.views, self.recent = views, []

    def state_dict(self) -> dict:
        return {"recent": torch.tensor(self.recent, dtype=torch.long)}

    def load_state_dict(self, state: dict) -> None:
        self.recent = state["recent"].tolist()

    def __call__(self, raw, rng) -> dict:
        out = self.views(raw, rng)
        out["view1"] = out["view1"] + 0.01 * sum(self.recent)
        self.recent = (self.recent + [rng.step])[-3:]
        return out


def test_resume_restores_the_batch_function_state(tmp_path: Path) -> None:
    ctx, data, cfg, fn = _loop_args(tmp_path / "ref", checkpoint_every=2)
    torch.manual_seed(0)
    train(ctx, _Tiny(), data, cfg, _RecentSteps(fn))
    ref = read_checkpoint(ctx.workdir / CHECKPOINT_FILE)

    ctx, data, cfg, fn = _loop_args(tmp_path / "cut", checkpoint_every=2)
    torch.manual_seed(0)
    with pytest.raises(NonFiniteLossError):  # dies at step 4, after the checkpoint of step 4 was prepared ahead
        train(ctx, _Tiny(nan_at=3), data, cfg, _RecentSteps(fn))
    state = read_checkpoint(ctx.workdir / CHECKPOINT_FILE)
    assert state["step"] == 2 and state["batch_fn"][0]["recent"].tolist() == [0, 1]
    train(ctx, _Tiny(), data, cfg, _RecentSteps(fn))
    resumed = read_checkpoint(ctx.workdir / CHECKPOINT_FILE)
    assert resumed["batch_fn"][0]["recent"].tolist() == ref["batch_fn"][0]["recent"].tolist() == [3, 4, 5]
    for k, v in ref["model"].items():
        assert torch.equal(v, resumed["model"][k]), k
