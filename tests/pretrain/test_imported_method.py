"""The ``imported`` method: an external checkpoint as a method's exported backbone."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision

from harness.core import config
from harness.run import runner
from harness.api import BACKBONE_META, StageContext
from harness.core.checkpoints import load_backbone
from harness.core.heads import load_heads
from harness.core.errors import ConfigError
from harness.core.registry import import_entry


def _moco_file(path: Path, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    backbone = {k: v for k, v in torchvision.models.resnet18().state_dict().items() if not k.startswith("fc.")}
    state = {f"module.encoder_q.{k}": v for k, v in backbone.items()}
    state.update({"module.encoder_q.fc.0.weight": torch.randn(512, 512), "module.encoder_q.fc.0.bias": torch.randn(512),
                  "module.encoder_q.fc.2.weight": torch.randn(128, 512), "module.encoder_q.fc.2.bias": torch.randn(128)})
    torch.save({"epoch": 200, "state_dict": state}, path)
    return backbone


def _plan(checkpoint: Path | None) -> list[runner.Unit]:
    overrides = [f"method.checkpoint={checkpoint}"] if checkpoint else []
    return runner.plan(config.resolve("imported", "smoke", preset="tiny", overrides=overrides))


def test_checkpoint_is_required_and_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--set method.checkpoint=PATH"):
        _plan(None)
    with pytest.raises(ConfigError, match="not found"):
        _plan(tmp_path / "absent.pth")


def test_the_key_follows_the_file_content_not_its_path(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pth"
    _moco_file(path, seed=0)
    first = _plan(path)
    assert [u.key for u in _plan(path)] == [u.key for u in first]
    _moco_file(path, seed=1)
    second = _plan(path)
    assert second[0].key != first[0].key and second[1].key != first[1].key


def test_stage_exports_the_backbone_and_the_projector(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pth"
    source = _moco_file(path, seed=0)
    cfg = config.resolve("imported", "smoke", preset="tiny", overrides=[f"method.checkpoint={path}"])
    stage = import_entry("harness_methods.imported:Imported")().stages(cfg["method"])[0]
    ctx = StageContext(name=stage.name, cfg=stage.view(cfg["method"]), workdir=tmp_path / "work", data_root=tmp_path,
                       seed=0, device="cpu", preset="tiny", method="imported", recipe="tiny", config_hash="x")
    summary = import_entry(stage.run)(ctx)
    assert summary["layout"] == "moco" and summary["arch"] == "resnet18" and summary["heads"].startswith("projector")
    net = load_backbone(tmp_path / "work" / "backbone.pth")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in source.items())
    assert json.loads((tmp_path / "work" / BACKBONE_META).read_text())["arch"] == "resnet18"
    assert set(load_heads(tmp_path / "work")) == {"projector"}


def test_label_names_the_rows_and_reruns_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pth"
    _moco_file(path, seed=0)
    base = config.resolve("imported", "smoke", preset="tiny", overrides=[f"method.checkpoint={path}"])
    named = config.resolve("imported", "smoke", preset="tiny",
                           overrides=[f"method.checkpoint={path}", "method.label=mocov2-official",
                                      "method.pretrain_data=imagenet"])
    assert [u.key for u in runner.plan(named)] == [u.key for u in runner.plan(base)]
    assert runner.recipe_label(named).startswith("mocov2-official+")
    assert runner.recipe_label(named) != runner.recipe_label(base)
    bad = config.resolve("imported", "smoke", preset="tiny", overrides=[f"method.checkpoint={path}", "method.label=a/b"])
    with pytest.raises(ConfigError, match="names a folder"):
        runner.recipe_label(bad)
