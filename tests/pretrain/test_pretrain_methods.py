"""The baseline method plugins: recipes, light plugin modules, learning on a short run."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from harness.core.checkpoints import load_backbone
from harness.core.heads import load_heads
from harness.pretrain.augment import TwoViewBatch
from harness.pretrain.data import DataConfig
from harness.pretrain.loop import LoopConfig
from harness.core.registry import import_entry
from pretrain_fixtures import REPO, read_log, small_recipe, stage_context, write_scenes

METHODS = {"mocov2": ("harness_methods.mocov2:MoCoV2", "harness.pretrain.moco:MoCoV2Model"),
           "byol": ("harness_methods.byol:BYOL", "harness.pretrain.byol:BYOLModel"),
           "densecl": ("harness_methods.densecl:DenseCL", "harness_methods.densecl.model:DenseCLModel")}


PAPER_BATCH = {"paper": {"mocov2": 256, "densecl": 256, "byol": 4096}, "paper-contracam": {"byol": 256}}


@pytest.mark.parametrize("method,recipe", [(m, p.stem) for m in sorted(METHODS)
                                           for p in sorted((REPO / "methods" / m / "recipes").glob("*.yaml"))])
def test_recipes_parse_and_plugin_exports_one_stage(method: str, recipe: str) -> None:
    cfg = yaml.safe_load((REPO / "methods" / method / "recipes" / f"{recipe}.yaml").read_text())
    assert isinstance(cfg["pretrain_data"], str) and isinstance(cfg["epochs"], int)
    loop = LoopConfig.from_recipe(cfg)
    TwoViewBatch.from_cfg(cfg["augment"])
    DataConfig.from_cfg(cfg["data"])
    with torch.device("meta"):
        model = import_entry(METHODS[method][1]).from_cfg(cfg)
    assert hasattr(model, "backbone") and model.export_heads()
    stages = import_entry(METHODS[method][0])().stages(cfg)
    assert [s.exports_backbone for s in stages] == [True] and isinstance(stages[0].run, str)
    if recipe.startswith("paper"):
        assert (cfg["arch"], loop.batch_size, loop.epochs) == ("resnet50", PAPER_BATCH[recipe][method], 800)


def test_plugin_modules_do_not_import_torch() -> None:
    code = "import sys, harness_methods.mocov2, harness_methods.byol, harness_methods.densecl; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


# Weak augmentation so that a few dozen steps at 32 px visibly learn.
EASY = {"scale": [0.6, 1.0], "jitter_p": 0.0, "gray_p": 0.0, "blur_p": 0.0}


@pytest.mark.parametrize("method,epochs,skip", [("mocov2", 6, 1), ("densecl", 6, 1), ("byol", 3, 0)])
def test_loss_decreases_on_a_short_run(tmp_path: Path, method: str, epochs: int, skip: int) -> None:
    """The first ``skip`` log records are left out: a queue initialised with random keys gives
    an easy loss until it holds real keys."""
    root = write_scenes(tmp_path / "data", n=48)
    cfg = small_recipe(epochs=epochs, optimizer={"lr": 3.0}, augment=EASY, loop={"checkpoint_every": 0, "log_every": 2})
    torch.manual_seed(0)
    work = tmp_path / "work"
    out = import_entry(f"harness_methods.{method}.stages:run")(stage_context(work, root, cfg, method=method))
    losses = [r["loss"] for r in read_log(work)]
    start = sum(losses[skip:skip + 3]) / 3
    end = sum(losses[-4:]) / 4
    assert end < 0.9 * start, losses
    assert out["steps"] == epochs * 6 and out["loss"] == losses[-1]
    net = load_backbone(work / "backbone.pth")
    assert net.conv1.weight.shape == (64, 3, 7, 7)
    assert "projector" in load_heads(work)
