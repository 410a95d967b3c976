"""Multi-process correctness off the GPU: a frozen task's extraction split over two gloo
ranks (each does half, both get the one-process features), and a pretraining checkpoint
that refuses a resume on another world size."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from gloo_ranks import run_ranks
from harness.core.errors import CheckpointError
from harness.data.image_sets import ArrayClassificationSet
from harness.pretrain import dist, loop
from harness.tasks.features import FeatureExtractor, TransformSpec, shard

SPEC = TransformSpec(resize=8, crop=8)


def _dataset() -> ArrayClassificationSet:
    rng = np.random.default_rng(0)
    return ArrayClassificationSet("toy", Path("/toy"), ["a", "b", "c"], rng.integers(0, 255, (21, 8, 8, 3), np.uint8),
                                  np.arange(21) % 3)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _rank(rank: int, cache: str) -> tuple:
    ex = FeatureExtractor(_model(), "toy-model", SPEC, cache_dir=Path(cache), batch_size=2)
    feats = ex(_dataset())
    return ex.forward_batches, feats.x.numpy().copy(), feats.y.numpy().copy()


def test_each_rank_extracts_its_share(tmp_path: Path) -> None:
    alone = FeatureExtractor(_model(), "toy-model", SPEC, cache_dir=tmp_path / "alone", batch_size=2)(_dataset())
    got = [(batches, torch.from_numpy(x), torch.from_numpy(y))
           for batches, x, y in run_ranks(_rank, str(tmp_path / "ranks"), timeout=180)]
    assert [shard(21, r, 2) for r in range(2)] == [(0, 10), (10, 21)]
    assert got[0][0] == 5 and got[1][0] == 6  # ceil(10 / 2) and ceil(11 / 2) batches: each rank its share only
    for r in range(2):
        assert torch.allclose(got[r][1], alone.x, atol=1e-6) and torch.equal(got[r][2], alone.y)
    cached = list((tmp_path / "ranks").glob("*.pt"))
    assert len(cached) == 1 and ".part" not in cached[0].name  # rank 0 wrote the whole entry, the parts are gone


def _state(world: int) -> tuple[nn.Module, torch.optim.Optimizer, dict]:
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    state = {"fingerprint": {"f": 1}, "model": model.state_dict(), "optimizer": opt.state_dict(),
             "rng": [loop._rng_state()] * world, "world_size": world, "step": 3, "summary": {"loss": 1.0}}
    return model, opt, state


def test_a_resume_on_another_world_size_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, opt, state = _state(world=2)
    one = dist.DistInfo(0, 1, 0)
    with pytest.raises(CheckpointError, match="written by 2 processes and this run has 1"):
        loop._resume(state, tmp_path / "c.pt", {"f": 1}, one, model, opt, None)
    monkeypatch.setenv(loop.ANY_WORLD_ENV, "1")
    assert loop._resume(state, tmp_path / "c.pt", {"f": 1}, one, model, opt, None) == (3, {"loss": 1.0})
    monkeypatch.delenv(loop.ANY_WORLD_ENV)
    model, opt, same = _state(world=1)
    assert loop._resume(same, tmp_path / "c.pt", {"f": 1}, one, model, opt, None)[0] == 3


def test_prefetch_stays_inside_its_shared_memory_budget() -> None:
    from types import SimpleNamespace

    paper = SimpleNamespace(short_side=480, max_long=800)  # byol paper: 4096 over 8 ranks, 8 workers
    assert loop.prefetch_factor(paper, 512, 8) == 1  # 8 x 590 MB in flight, not 8 x 4
    assert loop.prefetch_factor(paper, 32, 8) == 4
    assert loop.prefetch_factor(paper, 512, 0) is None
