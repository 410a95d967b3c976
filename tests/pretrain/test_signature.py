"""The instance-discrimination signature of a pretraining stage: what it measures, that it
leaves the model and the random streams alone, that its floor is the untrained network with
the probe's BN statistics, and that ``harness check`` fails a stage that did not learn."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn as nn

from harness.core.registry import import_entry
from harness.pretrain.models import build_resnet
from harness.pretrain.signature import SIGNATURE_FILE, measure, with_probe_statistics
from harness.results import regress
from pretrain_fixtures import small_recipe, stage_context, write_scenes


def test_views_of_one_image_are_retrieved_and_aligned() -> None:
    torch.manual_seed(0)
    net = build_resnet("resnet18", False)
    images = torch.randn(12, 3, 32, 32)
    same = measure(net, images, images)
    assert same["signature_retrieval"] == 100.0
    other = measure(net, images, torch.randn(12, 3, 32, 32))
    assert same["signature_alignment"] > other["signature_alignment"] + 0.05
    assert other["signature_retrieval"] < 50.0


def test_probe_leaves_the_model_and_the_random_streams_as_they_were() -> None:
    torch.manual_seed(0)
    net = build_resnet("resnet18", False).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    v1, v2 = torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32)
    state = torch.get_rng_state()
    measure(net, v1, v2)
    assert net.training and torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_probe_statistics_are_the_exact_statistics_of_both_views() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4))
    v1, v2 = torch.randn(70, 3, 5, 5) * 3 + 1, torch.randn(30, 3, 4, 4)
    probe = with_probe_statistics(net, (v1, v2))
    # chunks of 64 images (64 + 6 + 30): the cumulative average of the three chunk means
    with torch.no_grad():
        chunks = [net[0](c).mean(dim=(0, 2, 3)) for v in (v1, v2) for c in v.split(64)]
    assert len(chunks) == 3
    assert torch.allclose(probe[1].running_mean, torch.stack(chunks).mean(0), atol=1e-5)
    assert not probe.training and net[1].running_mean.eq(0).all()


def _run(tmp_path: Path, lr: float, seed: int = 0) -> tuple[dict, Path]:
    root = write_scenes(tmp_path / "data", n=24, seed=seed)
    cfg = small_recipe(epochs=2, optimizer={"lr": lr}, loop={"checkpoint_every": 0, "log_every": 1})
    torch.manual_seed(seed)
    work = tmp_path / "work"
    out = import_entry("harness_methods.mocov2.stages:run")(stage_context(work, root, cfg, seed=seed))
    return out, work


def test_a_stage_that_does_not_learn_scores_its_untrained_value_and_fails_its_check(tmp_path: Path) -> None:
    out, work = _run(tmp_path, lr=0.0)
    # running statistics move, weights do not: the probe's own statistics make both equal
    assert out["signature_alignment"] == pytest.approx(out["signature_alignment_init"], abs=1e-6)
    assert out["signature_retrieval"] == out["signature_retrieval_init"]
    assert json.loads((work / SIGNATURE_FILE).read_text())["init"]["signature_alignment"] == \
        out["signature_alignment_init"]
    rows = pd.DataFrame([{"task": "stage.pretrain", "kind": "stage", "status": "ok", "seed": 0, "metrics": out}])
    [check] = regress.signature_checks(rows)
    assert (check.kind, check.status) == ("above signature_alignment_init", "FAIL")


def test_resumed_stage_reports_the_untrained_value_of_its_first_attempt(tmp_path: Path) -> None:
    first, work = _run(tmp_path, lr=3.0)
    (work / SIGNATURE_FILE).write_text(json.dumps({"init": {"signature_alignment": -1.0}}))
    again = import_entry("harness_methods.mocov2.stages:run")(
        stage_context(work, tmp_path / "data", small_recipe(epochs=2, optimizer={"lr": 3.0},
                                                            loop={"checkpoint_every": 0, "log_every": 1})))
    assert again["signature_alignment_init"] == -1.0
    assert again["signature_alignment"] == pytest.approx(first["signature_alignment"], abs=1e-6)


def test_signature_checks_read_only_stage_records_that_carry_both_values() -> None:
    rows = pd.DataFrame([
        {"task": "stage.pretrain", "kind": "stage", "status": "ok", "seed": 1,
         "metrics": {"signature_alignment": 0.3, "signature_alignment_init": 0.2}},
        {"task": "stage.byol", "kind": "stage", "status": "ok", "seed": 1, "metrics": {"loss": 1.0}},
        {"task": "knn", "kind": "task", "status": "ok", "seed": 1,
         "metrics": {"signature_alignment": 0.1, "signature_alignment_init": 0.2}},
        {"task": "stage.orl", "kind": "stage", "status": "failed", "seed": 1, "metrics": None},
    ])
    [check] = regress.signature_checks(rows)
    assert (check.task, check.seed, check.status, check.actual) == ("stage.pretrain", 1, "pass", 0.3)


def test_a_sync_batchnorm_model_is_probed_with_local_statistics() -> None:
    """Under DDP only rank 0 probes: its copy must not wait for the other ranks."""
    torch.manual_seed(0)
    net = build_resnet("resnet18", False)
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(build_resnet("resnet18", False))
    synced.load_state_dict(net.state_dict())
    v1, v2 = torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32)
    assert measure(synced, v1, v2) == pytest.approx(measure(net, v1, v2), abs=1e-6)
    assert any(isinstance(m, nn.SyncBatchNorm) for m in synced.modules())
