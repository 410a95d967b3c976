"""The three ORL stages through ``Stage.run`` with hand-built StageContexts, and stage 3's loss."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from harness.api import BACKBONE_FILE, StageContext
from harness.core.checkpoints import load_backbone
from harness.pretrain.loop import LoopConfig, train
from harness.core.registry import import_entry
from harness_methods.orl import ORL
from harness_methods.orl.artifacts import Correspondence
from harness_methods.orl.model import ORLNet
from harness_methods.orl.stages.orl import patch_augs, training_images
from harness_methods.orl.views import JitterConfig, ORLBatch
from harness.pretrain.augment import TwoViewBatch
from orl_scenes import hand_correspondence, make_scenes

RECIPES = Path(__file__).resolve().parents[2] / "methods" / "orl" / "recipes"


def _tiny_cfg(**over) -> dict:
    cfg = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    cfg.update(name="orl", recipe="tiny", epochs=1, batch_size=8)
    cfg["correspondence"].update(k=3, ss_workers=1, min_size=10, top_n=8)
    cfg["heads"] = {"proj_hidden": 64, "out_dim": 32, "pred_hidden": 64}
    cfg["loop"]["checkpoint_every"] = 0
    cfg.update(over)
    return cfg


def _ctx(cfg, root, work, name, upstream=None) -> StageContext:
    stage = {s.name: s for s in ORL().stages(cfg)}[name]
    return StageContext(name=name, cfg=stage.view(copy.deepcopy(cfg)), workdir=work / name, data_root=root, seed=0,
                        device="cpu", preset="tiny", method="orl", recipe="tiny",
                        upstream=dict(upstream or {}), config_hash="test")


@pytest.mark.parametrize("recipe", ["tiny", "paper", "paper-cocoplus"])
def test_recipes_parse(recipe):
    from harness_methods.orl.correspondence import CorrespondenceConfig
    from harness_methods.orl.recipe import stage_recipe
    from harness_methods.orl.stages.byol import build_model as byol_model
    from harness_methods.orl.stages.orl import build_model as orl_model, jitter_cfg

    cfg = yaml.safe_load((RECIPES / f"{recipe}.yaml").read_text())
    assert isinstance(cfg["pretrain_data"], str) and isinstance(cfg["epochs"], int)
    CorrespondenceConfig.from_cfg(cfg["correspondence"])
    orl = stage_recipe(cfg, "orl", ("patch_size", "patch_augment", "jitter", "loss_weights", "decode_threads"))
    jitter_cfg(orl["jitter"])
    patch_augs(orl["patch_augment"], orl["patch_size"])
    LoopConfig.from_recipe(orl)
    if recipe == "tiny":  # building the ResNet-50 models is slow; tiny covers the code
        byol_model(stage_recipe(cfg, "byol"))
        orl_model(orl)
    assert [s.name for s in ORL().stages(cfg)] == ["byol", "correspondence", "orl"]


def test_three_stages_through_stage_run(tmp_path):
    root = tmp_path / "data"
    make_scenes(root, n=16, side=96)
    cfg = _tiny_cfg()
    stages = ORL().stages(cfg)
    work = tmp_path / "work"
    upstream: dict[str, Path] = {}
    summaries = {}
    for stage in stages:
        ctx = _ctx(cfg, root, work, stage.name, upstream)
        summaries[stage.name] = import_entry(stage.run)(ctx)
        upstream[stage.name] = ctx.workdir
    assert np.isfinite(summaries["orl"]["loss"])
    corr = Correspondence.load(upstream["correspondence"])
    assert corr.num_images == 16 and corr.k == 3
    net = load_backbone(upstream["orl"] / BACKBONE_FILE)
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 512)
    meta = json.loads((upstream["orl"] / "backbone.json").read_text())
    assert meta["arch"] == "resnet18" and meta["method"] == "orl"
    # stage 3 starts from random init: its backbone differs from stage 1's beyond training noise
    b1 = torch.load(upstream["byol"] / BACKBONE_FILE, weights_only=True)
    b3 = torch.load(upstream["orl"] / BACKBONE_FILE, weights_only=True)
    assert not torch.allclose(b1["conv1.weight"], b3["conv1.weight"])
    # a rerun of a finished stage resumes (nothing to do) and reports the same summary
    again = import_entry(stages[1].run)(_ctx(cfg, root, work, "correspondence", {"byol": upstream["byol"]}))
    assert again == summaries["correspondence"]


def test_stage3_loss_decreases(tmp_path):
    n, side = 16, 96
    truth = make_scenes(tmp_path / "data", n=n, side=side)
    corr = hand_correspondence(truth, n, side)
    cfg = _tiny_cfg(epochs=5, batch_size=8)
    cfg["optimizer"] = {"name": "sgd", "lr": 0.05, "base_batch": 8, "momentum": 0.9, "weight_decay": 1.0e-4}
    cfg["augment"]["size"] = 48
    cfg["loop"]["log_every"] = 1
    ctx = _ctx(cfg, tmp_path / "data", tmp_path / "work", "orl")
    images = training_images(ctx, cfg, corr)
    batch_fn = ORLBatch(corr, images, TwoViewBatch.from_cfg(cfg["augment"]).augs, patch_augs(
        cfg["orl"]["patch_augment"], 24), 24, JitterConfig(), decode_threads=1)
    torch.manual_seed(0)
    model = ORLNet("resnet18", 64, 32, 64, base_momentum=0.99)
    summary = train(ctx, model, images, LoopConfig.from_recipe(cfg), batch_fn)
    log = [json.loads(line) for line in (ctx.workdir / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 10
    first = np.mean([r["loss"] for r in log[:3]])
    last = np.mean([r["loss"] for r in log[-3:]])
    assert last < first - 1.0, [round(r["loss"], 2) for r in log]
    for branch in ("image", "intra", "inter"):
        assert np.mean([r[f"loss_{branch}"] for r in log[-3:]]) < np.mean([r[f"loss_{branch}"] for r in log[:3]])
    assert summary["loss"] == pytest.approx(log[-1]["loss"])
