"""Experiment tracking by configuration: ``log.backends`` is checked when the run is
resolved, stays out of every unit key, and pretraining's log reaches W&B (offline) and an
MLflow file store with the same scalars it writes to ``train_log.jsonl``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.core import config, tracking
from harness.core.errors import ConfigError
from harness.pretrain.train_log import LOG_FILE, TENSORBOARD_DIR, TrainLog
from harness.run import runner
from tracking_stores import mlflow_runs, wandb_offline_runs

ALL = "log.backends=[tensorboard,wandb,mlflow]"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_PROJECT", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)


def test_backends_are_tensorboard_by_default_and_never_in_a_unit_key(offline: None) -> None:
    plain = config.resolve("mocov2", "smoke")
    tracked = config.resolve("mocov2", "smoke", overrides=[ALL])
    assert plain["log"] == {"backends": ["tensorboard"]}
    assert tracked["log"]["backends"] == ["tensorboard", "wandb", "mlflow"]
    assert [u.key for u in runner.plan(plain)] == [u.key for u in runner.plan(tracked)]


@pytest.mark.parametrize("value,message", [
    ("wandb", "expected a list"), ("[tensorboard,comet]", "unknown backend 'comet'"),
    ("[mlflow,mlflow]", "names a backend twice")])
def test_a_bad_backend_list_is_refused_when_resolved(offline: None, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.resolve("mocov2", "smoke", overrides=[f"log.backends={value}"])


def test_wandb_without_a_key_or_offline_mode_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.raises(ConfigError, match="wandb has no API key.*WANDB_MODE=offline"):
        config.resolve("mocov2", "smoke", overrides=["log.backends=[wandb]"])
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password k\n")
    assert config.resolve("mocov2", "smoke", overrides=["log.backends=[wandb]"])["log"]["backends"] == ["wandb"]


def test_destinations_follow_each_tools_environment(offline: None, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    cfg = {"log": {"backends": ["wandb", "mlflow"]}}
    mine = tracking.run_tracking(cfg, "mocov2-tiny-seed0", tmp_path)
    assert mine["mlflow_uri"] == (tmp_path / "mlruns").resolve().as_uri() and mine["wandb_project"] == "harness"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    monkeypatch.setenv("WANDB_PROJECT", "scenes")
    theirs = tracking.run_tracking(cfg, "mocov2-tiny-seed0", tmp_path)
    assert theirs["mlflow_uri"] == "http://mlflow.example:5000" and theirs["wandb_project"] == "scenes"
    mlflow_cfg, wandb_cfg = reversed(tracking.vis_backend_cfgs(theirs, "knn"))
    assert mlflow_cfg["run_name"] == wandb_cfg["init_kwargs"]["name"] == "mocov2-tiny-seed0/knn"
    assert wandb_cfg["init_kwargs"]["group"] == "mocov2-tiny-seed0"
    assert tracking.vis_backend_cfgs({}, "knn") == [{"type": "TensorboardVisBackend"}]


def _log_steps(workdir: Path, tracking_spec: dict, resume_step: int, steps: range) -> None:
    log = TrainLog(workdir, resume_step, tracking_spec, "pretrain", {"arch": "resnet18", "lr": 0.03})
    for step in steps:
        log.add({"loss": torch.tensor(10.0 - step), "acc": torch.tensor(float(step))})
        log.flush({"step": step, "lr": 0.1})
    log.close()


def test_pretraining_sends_its_log_to_every_backend(offline: None, tmp_path: Path) -> None:
    spec = tracking.run_tracking({"log": {"backends": ["wandb", "mlflow"]}}, "byol-tiny-seed3", tmp_path)
    tracking.prepare_environment(spec)
    workdir = tmp_path / "units" / "pretrain"
    workdir.mkdir(parents=True)
    _log_steps(workdir, spec, 0, range(1, 4))
    logged = [json.loads(ln) for ln in (workdir / LOG_FILE).read_text().splitlines()]
    assert [r["loss"] for r in logged] == [9.0, 8.0, 7.0]
    assert not (workdir / TENSORBOARD_DIR).exists()  # not asked for
    runs = wandb_offline_runs(workdir)
    assert list(runs) == ["byol-tiny-seed3/pretrain"]
    assert runs["byol-tiny-seed3/pretrain"]["pretrain/loss"] == [9.0, 8.0, 7.0]
    assert runs["byol-tiny-seed3/pretrain"]["pretrain/lr"] == [0.1] * 3
    mlflow = mlflow_runs(spec["mlflow_uri"])
    assert mlflow["byol-tiny-seed3/pretrain"]["pretrain/acc"] == [(1, 1.0), (2, 2.0), (3, 3.0)]


def test_a_process_that_is_not_rank_zero_logs_nowhere(offline: None, tmp_path: Path) -> None:
    spec = tracking.run_tracking({"log": {"backends": ["tensorboard", "mlflow"]}}, "r", tmp_path)
    log = TrainLog(None, 0, spec)
    log.add({"loss": torch.tensor(1.0)})
    assert log.flush({"step": 1})["loss"] == 1.0
    log.close()
    assert not list(tmp_path.iterdir())
