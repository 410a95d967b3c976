"""MoCo v3 core: its loss against a direct computation, the momentum schedule, the frozen
patch projection, and its paper recipe against the paper's values."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from harness.core import registry
from harness.core.errors import ConfigError
from harness.pretrain.loop import LoopConfig
from harness.pretrain.mocov3 import MoCoV3Model, batch_contrast

MOCOV3_PAPER = "Chen, Xie and He, ICCV 2021 (MoCo v3), Sec. 4 and App. A"


def test_batch_contrast_is_two_t_times_cross_entropy_on_own_keys() -> None:
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(6, 8, generator=g, dtype=torch.float64), dim=1)
    k = F.normalize(torch.randn(6, 8, generator=g, dtype=torch.float64), dim=1)
    loss, acc = batch_contrast(q, k, 0.2)
    logits = (q @ k.t() / 0.2).tolist()
    direct = sum(-(logits[i][i] - math.log(sum(math.exp(v) for v in logits[i]))) for i in range(6)) / 6 * 0.4
    assert loss.item() == pytest.approx(direct, rel=1e-6)
    assert 0.0 <= acc.item() <= 100.0


def test_a_step_keeps_the_patch_projection_and_moves_the_keys_by_the_schedule() -> None:
    torch.manual_seed(0)
    model = MoCoV3Model("vit_tiny_patch16", dim=16, hidden=32, img_size=32, freeze_patch_embed=True)
    patch = model.backbone.patch_embed.proj.weight.clone()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    batch = {"view1": torch.randn(4, 3, 32, 32), "view2": torch.randn(4, 3, 32, 32)}
    out = model(batch)
    out["loss"].backward()
    opt.step()
    assert torch.equal(model.backbone.patch_embed.proj.weight, patch)  # frozen, as the paper's trick
    assert model.after_step(0, 4) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2)
    assert model.after_step(3, 4) == pytest.approx(1.0)
    assert not any(p.requires_grad for p in model.backbone_k.parameters())


def test_freezing_a_patch_projection_needs_a_vit() -> None:
    with pytest.raises(ConfigError, match="needs a ViT trunk"):
        MoCoV3Model("resnet18", dim=16, hidden=32, freeze_patch_embed=True)


def test_paper_recipe_is_the_mocov3_vit_s_recipe() -> None:
    recipe = registry.load_recipe("mocov3", "paper")
    loop = LoopConfig.from_recipe(recipe)
    resolved = (recipe["arch"], recipe["img_size"], recipe["batch_size"], loop.optim.name, loop.optim.lr,
                loop.optim.weight_decay, loop.optim.warmup_epochs, recipe["epochs"], recipe["mocov3"])
    assert resolved == ("vit_small_patch16", 224, 4096, "adamw", 1.5e-4, 0.1, 40, 300,
                        {"dim": 256, "hidden": 4096, "momentum": 0.99, "temperature": 0.2,
                         "freeze_patch_embed": True}), MOCOV3_PAPER


def test_adamw_excludes_biases_and_norms_from_decay() -> None:
    from harness.pretrain.optim import OptimConfig, build_optimizer

    cfg = OptimConfig.from_recipe(registry.load_recipe("mocov3", "tiny"))
    model = MoCoV3Model("vit_tiny_patch16", dim=16, hidden=32, img_size=32, freeze_patch_embed=True)
    opt = build_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.999)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert all(p.ndim <= 1 for p in opt.param_groups[1]["params"])
    with pytest.raises(ConfigError, match="'sgd', 'lars' or 'adamw'"):
        OptimConfig.from_recipe({"optimizer": {"name": "adam"}})
