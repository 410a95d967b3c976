"""Resume semantics of the pretraining loop, in this process on a tiny model.

A stage stopped after a step that was not checkpointed continues from its last
checkpoint and then logs the same losses and learning rates as an uninterrupted run
(model, optimiser, step, schedule position and the torch / numpy / python RNGs all
restored); a finished stage trains no further step and leaves (and exports) exactly the
trained weights, whatever model it is handed.
"""
from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn as nn

from harness.pretrain.augment import TwoViewBatch
from harness.pretrain.data import SceneImages, list_scene_images
from harness.pretrain.loop import CHECKPOINT_FILE, LoopConfig, read_checkpoint, train
from pretrain_fixtures import read_log, small_recipe, stage_context, write_scenes


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


class Noisy(nn.Module):
    """A loss that draws from the numpy and python RNGs (and, with ``torch_noise``, from
    torch's) and reads a buffer that ``after_step`` updates: a resume that restores any of
    them wrongly changes the losses."""

    def __init__(self, torch_noise: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.register_buffer("seen", torch.zeros(()))
        self.torch_noise = torch_noise

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        f1 = self.conv(batch["view1"]).mean((2, 3))
        f2 = self.conv(batch["view2"]).mean((2, 3))
        noise = torch.tensor(float(np.random.rand()) + random.random())
        if self.torch_noise:
            noise = noise + torch.rand(())
        loss = (f1 - f2).pow(2).mean() * (1.0 + noise) + self.conv.weight.pow(2).sum() * (1.0 + 0.1 * self.seen)
        return {"loss": loss, "noise": noise}

    def after_step(self, step: int, total: int) -> float:
        self.seen += 1
        return 0.5


RECIPE = small_recipe(batch_size=4, epochs=3, loop={"checkpoint_every": 2, "log_every": 1},
                      optimizer={"lr": 3.0, "momentum": 0.9, "weight_decay": 1e-3})


class Stop(Exception):
    """Raised from the progress callback to end a run after a chosen step."""


def _setup(tmp_path: Path, name: str, stop_after: int | None = None):
    root = tmp_path / "data"
    if not root.exists():
        write_scenes(root, n=8)
    calls: list[tuple[int, int]] = []

    def progress(step: int, total: int, **_: Any) -> None:
        calls.append((step, total))
        if stop_after is not None and step == stop_after:
            raise Stop(step)

    ctx = dataclasses.replace(stage_context(tmp_path / name, root, RECIPE), progress=progress)
    data = SceneImages(list_scene_images(root), 40, cache=True)
    return ctx, data, LoopConfig.from_recipe(RECIPE), TwoViewBatch.from_cfg(RECIPE["augment"]), calls


def _model(seed: int, torch_noise: bool = False) -> Noisy:
    torch.manual_seed(seed)
    return Noisy(torch_noise)


def _cosine_lr(step: int, steps_per_epoch: int = 2, epochs: int = 3) -> float:
    peak = 3.0 * 4 / 256
    return 0.5 * peak * (1.0 + math.cos(math.pi * step / (steps_per_epoch * epochs)))


def test_an_interrupted_stage_continues_as_if_never_stopped(tmp_path: Path) -> None:
    ctx, data, cfg, fn, calls = _setup(tmp_path, "ref")
    seed_all(0)
    ref_out = train(ctx, _model(1), data, cfg, fn)
    ref_log = read_log(ctx.workdir)
    assert [r["step"] for r in ref_log] == [1, 2, 3, 4, 5, 6] and [c[0] for c in calls] == [1, 2, 3, 4, 5, 6]
    assert [r["lr"] for r in ref_log] == pytest.approx([_cosine_lr(s) for s in range(6)], rel=1e-12)
    ref = read_checkpoint(ctx.workdir / CHECKPOINT_FILE)

    cut, data, cfg, fn, calls = _setup(tmp_path, "cut", stop_after=3)
    seed_all(0)
    with pytest.raises(Stop):
        train(cut, _model(1), data, cfg, fn)
    assert read_checkpoint(cut.workdir / CHECKPOINT_FILE)["step"] == 2  # step 3 ran but was not checkpointed
    seed_all(123)  # another process: other RNG states and another initial model
    resumed_ctx, data, cfg, fn, calls = _setup(tmp_path, "cut")
    out = train(resumed_ctx, _model(7), data, cfg, fn)
    assert out["resumed_from"] == 2 and [c[0] for c in calls] == [3, 4, 5, 6]
    log = read_log(cut.workdir)
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]  # each step once
    assert [r["loss"] for r in log] == [r["loss"] for r in ref_log]
    assert [r["noise"] for r in log] == [r["noise"] for r in ref_log]
    assert [r["lr"] for r in log] == [r["lr"] for r in ref_log]
    assert out["loss"] == ref_out["loss"] and out["loss_start"] == ref_out["loss_start"] == ref_log[0]["loss"]
    assert out["steps"] == ref_out["steps"] == 6
    final = read_checkpoint(cut.workdir / CHECKPOINT_FILE)
    assert final["step"] == 6 and final["model"]["seen"] == 6
    for k, v in ref["model"].items():
        assert torch.equal(v, final["model"][k]), k
    for a, b in zip(ref["optimizer"]["state"].values(), final["optimizer"]["state"].values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])


def test_every_checkpoint_holds_the_state_after_its_step(tmp_path: Path) -> None:
    ctx, data, cfg, fn, _ = _setup(tmp_path, "ref", stop_after=2)
    seed_all(0)
    with pytest.raises(Stop):
        train(ctx, _model(1), data, cfg, fn)
    state = read_checkpoint(ctx.workdir / CHECKPOINT_FILE)
    assert state["step"] == 2 and state["total_steps"] == 6 and state["model"]["seen"] == 2
    assert state["summary"]["loss"] == read_log(ctx.workdir)[-1]["loss"]
    # an optimiser that has stepped twice: momentum buffers present
    assert all("momentum_buffer" in s for s in state["optimizer"]["state"].values())


def test_a_finished_stage_trains_no_step_and_keeps_the_trained_weights(tmp_path: Path) -> None:
    ctx, data, cfg, fn, calls = _setup(tmp_path, "run")
    seed_all(0)
    first = train(ctx, _model(1), data, cfg, fn)
    trained = read_checkpoint(ctx.workdir / CHECKPOINT_FILE)
    log_before = (ctx.workdir / "train_log.jsonl").read_text()

    ctx, data, cfg, fn, calls = _setup(tmp_path, "run")
    fresh = _model(99)
    again = train(ctx, fresh, data, cfg, fn)
    assert calls == [(6, 6)]  # no step ran
    assert (ctx.workdir / "train_log.jsonl").read_text() == log_before
    assert again["resumed_from"] == 6 and again["loss"] == first["loss"]
    assert again["loss_start"] == first["loss_start"]
    assert (again["steps"], again["epochs"]) == (first["steps"], first["epochs"])  # the same stage record
    state = fresh.state_dict()
    for k, v in trained["model"].items():
        assert torch.equal(state[k], v), k  # the model handed in now holds the trained weights
    after = read_checkpoint(ctx.workdir / CHECKPOINT_FILE)
    assert after["step"] == 6
    for k, v in trained["model"].items():
        assert torch.equal(after["model"][k], v), k


@pytest.mark.parametrize("every, stop, saved", [(4, 5, 4), (4, None, 6), (0, 5, None), (0, None, 6)])
def test_checkpoints_every_n_steps_and_at_the_end(tmp_path: Path, every: int, stop: int | None,
                                                  saved: int | None) -> None:
    ctx, data, cfg, fn, _ = _setup(tmp_path, "run", stop_after=stop)
    cfg = dataclasses.replace(cfg, checkpoint_every=every)
    seed_all(0)
    if stop is None:
        train(ctx, _model(1), data, cfg, fn)
    else:
        with pytest.raises(Stop):
            train(ctx, _model(1), data, cfg, fn)
    path = ctx.workdir / CHECKPOINT_FILE
    assert (read_checkpoint(path)["step"] if path.exists() else None) == saved


def test_a_checkpoint_of_another_seed_or_dataset_is_refused(tmp_path: Path) -> None:
    from harness.core.errors import CheckpointError

    ctx, data, cfg, fn, _ = _setup(tmp_path, "run", stop_after=2)
    seed_all(0)
    with pytest.raises(Stop):
        train(ctx, _model(1), data, cfg, fn)
    other_seed = dataclasses.replace(ctx, seed=1)
    with pytest.raises(CheckpointError, match="different configuration"):
        train(other_seed, _model(1), data, cfg, fn)
    with pytest.raises(CheckpointError, match="different configuration"):
        train(ctx, _model(1), torch.utils.data.Subset(data, range(4)), cfg, fn)


def test_rng_states_round_trip() -> None:
    from harness.pretrain.loop import _rng_state, _set_rng_state

    seed_all(3)
    torch.rand(5), np.random.rand(3), random.random()
    state = _rng_state()
    before = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.randn())
    seed_all(11)
    _set_rng_state(state)
    after = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.randn())
    assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    assert before[2] == after[2] and before[3] == after[3]


def test_a_finished_stage_leaves_the_rngs_as_checkpointed(tmp_path: Path) -> None:
    ctx, data, cfg, fn, _ = _setup(tmp_path, "run")
    seed_all(0)
    train(ctx, _model(1), data, cfg, fn)
    saved = read_checkpoint(ctx.workdir / CHECKPOINT_FILE)["rng"][0]
    seed_all(42)
    train(ctx, _model(2), data, cfg, fn)
    assert torch.equal(torch.get_rng_state(), saved["torch"])
    assert random.getstate()[1] == tuple(saved["python"][1])
    assert np.array_equal(np.random.get_state()[1], saved["numpy"][1].numpy().astype(np.uint32))


def test_a_model_drawing_from_torch_rng_resumes_exactly(tmp_path: Path) -> None:
    ctx, data, cfg, fn, _ = _setup(tmp_path, "ref")
    seed_all(0)
    train(ctx, _model(1, torch_noise=True), data, cfg, fn)
    cut, data, cfg, fn, _ = _setup(tmp_path, "cut", stop_after=3)
    seed_all(0)
    with pytest.raises(Stop):
        train(cut, _model(1, torch_noise=True), data, cfg, fn)
    resumed, data, cfg, fn, _ = _setup(tmp_path, "cut")
    train(resumed, _model(7, torch_noise=True), data, cfg, fn)
    assert [r["noise"] for r in read_log(cut.workdir)] == [r["noise"] for r in read_log(ctx.workdir)]


class Exportable(nn.Module):
    """A ResNet-18 trunk trained to match its two views (exportable by the stage glue)."""

    def __init__(self) -> None:
        super().__init__()
        from harness.pretrain.models import build_resnet

        self.backbone = build_resnet("resnet18")

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"loss": (self.backbone(batch["view1"]) - self.backbone(batch["view2"])).pow(2).mean()}

    def export_heads(self) -> dict:
        return {}


def test_rerunning_a_finished_stage_exports_the_same_backbone(tmp_path: Path) -> None:
    from harness.pretrain.stage import pretrain

    root = write_scenes(tmp_path / "data", n=8)
    recipe = small_recipe(batch_size=4, epochs=1, loop={"checkpoint_every": 1, "log_every": 1})
    ctx = stage_context(tmp_path / "work", root, recipe)
    seed_all(0)
    torch.manual_seed(0)
    pretrain(ctx, Exportable())
    first = torch.load(ctx.workdir / "backbone.pth", weights_only=True)
    init = Exportable().backbone.state_dict()  # another initialisation
    assert any(not torch.equal(first[k], init[k]) for k in first)
    log = (ctx.workdir / "train_log.jsonl").read_text()

    torch.manual_seed(5)
    summary = pretrain(ctx, Exportable())
    second = torch.load(ctx.workdir / "backbone.pth", weights_only=True)
    assert summary["resumed_from"] == 2 and (ctx.workdir / "train_log.jsonl").read_text() == log
    assert first.keys() == second.keys()
    for k in first:
        assert torch.equal(first[k], second[k]), k
