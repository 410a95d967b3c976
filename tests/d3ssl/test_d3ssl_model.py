"""D3SSL losses and model: finite, decreasing over a short run, EMA teacher, export."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from d3ssl_helpers import raw_batch, small_cfg
from harness.pretrain.augment import StepRNG
from harness_methods.d3ssl import D3SSL
from harness_methods.d3ssl.losses import combine, roi_byol_loss
from harness_methods.d3ssl.model import D3SSLModel, RoIEncoder, cosine_momentum
from harness_methods.d3ssl.views import D3SSLBatch

RECIPES = Path(__file__).resolve().parents[2] / "methods" / "d3ssl" / "recipes"


def test_roi_byol_loss_values_and_valid_mask():
    z = torch.randn(5, 8)
    valid = torch.ones(5, dtype=torch.bool)
    assert roi_byol_loss(z, z, valid).item() == pytest.approx(0.0, abs=1e-6)
    assert roi_byol_loss(-z, z, valid).item() == pytest.approx(4.0, abs=1e-5)
    mixed = torch.cat([z[:2], -z[2:]])
    assert roi_byol_loss(mixed, z, torch.tensor([True, True, False, False, False])).item() == pytest.approx(0, abs=1e-6)
    none = roi_byol_loss(z.requires_grad_(), z, torch.zeros(5, dtype=torch.bool))
    assert none.item() == 0.0 and none.requires_grad


def test_combine_weights_terms():
    terms = {"base": torch.tensor(1.0), "decoupling": torch.tensor(2.0)}
    assert combine(terms, {"decoupling": 0.3}).item() == pytest.approx(1.6)


def test_roi_encoder_levels_and_small_views():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    boxes = torch.tensor([[[0.0, 0.0, 32.0, 32.0]], [[16.0, 16.0, 64.0, 48.0]]])
    for level in ("c4", "c5"):
        enc = RoIEncoder("resnet18", level=level, roi_size=4).eval()
        assert enc(x, boxes).shape == (2, 512)
        assert enc(x, boxes, scale=0.5).shape == (2, 512)


def test_cosine_momentum_goes_from_base_to_one():
    assert cosine_momentum(0.99, 0, 100) == pytest.approx(0.99)
    assert cosine_momentum(0.99, 100, 100) == pytest.approx(1.0)
    assert 0.99 < cosine_momentum(0.99, 50, 100) < 1.0


def test_losses_finite_and_decrease_on_a_short_run():
    torch.manual_seed(0)
    cfg = small_cfg()
    model = D3SSLModel(cfg)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    batch_fn, raw = D3SSLBatch(cfg), raw_batch(4)
    losses = []
    for step in range(12):
        batch = batch_fn(raw, StepRNG(0, step % 2))
        out = model(batch)
        assert all(torch.isfinite(v).all() for v in out.values())
        assert set(out) == {"loss", "loss_base", "loss_decoupling", "loss_depositioning"}
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        model.after_step(step, 12)
        losses.append(out["loss"].item())
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_teacher_follows_the_student_by_ema():
    torch.manual_seed(0)
    model = D3SSLModel(small_cfg())
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)
    before = next(model.teacher_encoder.parameters()).clone()
    model.after_step(0, 10)
    after = next(model.teacher_encoder.parameters())
    student = next(model.encoder.parameters())
    assert torch.allclose(after, 0.9 * before + 0.1 * student, atol=1e-6)
    assert not any(p.requires_grad for p in model.teacher_encoder.parameters())


def test_backbone_is_a_plain_torchvision_resnet(tmp_path):
    from harness.core.checkpoints import load_backbone, save_backbone

    model = D3SSLModel(small_cfg())
    save_backbone(model.backbone(), tmp_path, {"arch": "resnet18", "method": "d3ssl"})
    net = load_backbone(tmp_path / "backbone.pth")
    ref = model.backbone().state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in net.state_dict().items())


@pytest.mark.parametrize("name", ["tiny", "paper", "tiny-base", "paper-base"])
def test_recipes_are_complete_and_mark_our_choices(name):
    cfg = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
    assert isinstance(cfg["pretrain_data"], str) and isinstance(cfg["epochs"], int)
    for dotted in cfg["choices_ours"]:
        node = cfg
        for key in dotted.split("."):
            assert key in node, f"{name}.yaml: choices_ours names {dotted!r}, which the recipe does not set"
            node = node[key]
    modules_on = [cfg[m]["enabled"] for m in ("decoupling", "depositioning")]
    assert modules_on == ([False, False] if name.endswith("-base") else [True, True])
    stages = D3SSL().stages(cfg)
    assert [s.name for s in stages] == ["proposals", "pretrain"] and stages[-1].exports_backbone


def test_base_recipes_differ_from_the_full_ones_only_in_the_modules():
    for scale in ("tiny", "paper"):
        full = yaml.safe_load((RECIPES / f"{scale}.yaml").read_text())
        base = yaml.safe_load((RECIPES / f"{scale}-base.yaml").read_text())
        for m in ("decoupling", "depositioning"):
            full[m]["enabled"] = False
        assert {k: v for k, v in full.items() if k != "choices_ours"} == \
               {k: v for k, v in base.items() if k != "choices_ours"}
