"""MoCo v3 semantics: the batch contrast against a plain computation, queries with the
predictor against momentum keys of the other view (both directions), stop-gradient on
keys, the cosine momentum update of every key parameter, heads, and the stage glue."""
from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.pretrain.mocov3 import MoCoV3Model, batch_contrast
from pretrain_oracles import (assert_frozen_copy, assert_params_equal, buffers, contrastive_ce, copy_modules, ema,
                              params, perturb_, sgd_step, two_views, unit_rows, use_tiny_trunk)
from pretrain_fixtures import small_recipe, stage_context

M, T = 0.9, 0.2


def _model(tiny: bool = True, **kw: Any) -> MoCoV3Model:
    torch.manual_seed(0)
    model = MoCoV3Model("resnet18", **{"dim": 16, "hidden": 32, "momentum": M, "temperature": T, **kw})
    return use_tiny_trunk(model, "backbone_k") if tiny else model


def _ctr_ref(q: torch.Tensor, k: torch.Tensor, temperature: float) -> float:
    """``2 T`` times the cross-entropy of ``q k^T / T`` with each row's own key as the positive."""
    logits = q.double() @ k.double().t() / temperature
    return 2 * temperature * contrastive_ce(logits, list(range(len(q))))


@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_batch_contrast_matches_the_plain_loss_at_any_temperature(temperature: float) -> None:
    g = torch.Generator().manual_seed(0)
    q, k = unit_rows(7, 8, g), unit_rows(7, 8, g)
    loss, acc = batch_contrast(q, k, temperature)
    assert loss.ndim == 0 and loss.item() == pytest.approx(_ctr_ref(q, k, temperature), rel=1e-5)
    logits = q @ k.t()
    assert acc.item() == pytest.approx(100 * (logits.argmax(1) == torch.arange(7)).float().mean().item())


def test_batch_contrast_accuracy_counts_rows_whose_own_key_wins() -> None:
    g = torch.Generator().manual_seed(1)
    q = unit_rows(6, 8, g)
    k = torch.cat([q[:3], -q[3:]])  # own key at cos 1 (the top logit) or -1 (the bottom)
    loss, acc = batch_contrast(q, k, 0.5)
    assert acc.item() == pytest.approx(50.0)
    assert loss.item() == pytest.approx(_ctr_ref(q, k, 0.5), rel=1e-5)


def test_batch_contrast_gradient_reaches_queries_only() -> None:
    g = torch.Generator().manual_seed(2)
    q0, k = unit_rows(5, 8, g), unit_rows(5, 8, g).requires_grad_()
    q = q0.clone().requires_grad_()
    batch_contrast(q, k, 0.2)[0].backward()
    assert k.grad is None
    q64 = q0.double().requires_grad_()
    logits = q64 @ k.detach().double().t() / 0.2
    (0.4 * F.cross_entropy(logits, torch.arange(5))).backward()
    assert torch.allclose(q.grad.double(), q64.grad, atol=1e-6)


def test_key_encoder_is_a_frozen_copy_and_heads_follow_the_paper() -> None:
    model = _model(tiny=False)
    for online, key in ((model.backbone, model.backbone_k), (model.projector, model.projector_k)):
        assert_frozen_copy(online, key)
    assert {n for n, _ in model.named_children()} == {"backbone", "projector", "predictor", "backbone_k",
                                                      "projector_k"}
    assert model.projector_spec == {"type": "mlp", "dims": [512, 32, 32, 16], "bn": True, "last_bn": True}
    assert model.predictor_spec == {"type": "mlp", "dims": [16, 32, 16], "bn": True, "last_bn": True}
    assert [type(m) for m in model.predictor] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d]
    assert not model.predictor[-1].affine and model.predictor[1].affine
    assert all(m.bias is None for m in model.projector if isinstance(m, nn.Linear))
    heads = model.export_heads()
    assert heads["projector"][0] is model.projector and heads["predictor"][0] is model.predictor


def test_defaults_and_recipe_keys() -> None:
    defaults = {k: v.default for k, v in inspect.signature(MoCoV3Model).parameters.items()}
    assert {k: defaults[k] for k in ("dim", "hidden", "momentum", "temperature", "freeze_patch_embed",
                                     "zero_init_residual")} == \
        {"dim": 256, "hidden": 4096, "momentum": 0.99, "temperature": 0.2, "freeze_patch_embed": False,
         "zero_init_residual": False}
    model = MoCoV3Model.from_cfg({"arch": "resnet18", "mocov3": {"dim": 8, "hidden": 20, "momentum": 0.95,
                                                                 "temperature": 0.5}})
    assert (model.momentum, model.temperature) == (0.95, 0.5)
    assert model.projector_spec["dims"] == [512, 20, 20, 8] and model.predictor_spec["dims"] == [8, 20, 8]
    assert model.backbone.layer1[0].bn2.weight.abs().sum() > 0  # zero_init_residual defaults to off
    zero = MoCoV3Model.from_cfg({"arch": "resnet18", "zero_init_residual": True, "mocov3": {"dim": 8, "hidden": 20}})
    assert zero.backbone.layer1[0].bn2.weight.abs().sum() == 0


def test_frozen_patch_projection_is_left_out_of_training() -> None:
    from harness.pretrain.optim import OptimConfig, build_optimizer

    torch.manual_seed(0)
    model = MoCoV3Model("vit_tiny_patch16", dim=8, hidden=16, img_size=32, freeze_patch_embed=True)
    patch = {id(p) for p in model.backbone.patch_embed.parameters()}
    assert patch and not any(p.requires_grad for p in model.backbone.patch_embed.parameters())
    assert all(p.requires_grad for n, p in model.backbone.named_parameters() if not n.startswith("patch_embed."))
    assert not any(p.requires_grad for p in model.backbone_k.parameters())
    trained = {id(p) for g in build_optimizer(model, OptimConfig(name="adamw")).param_groups for p in g["params"]}
    assert not trained & patch and id(model.backbone.cls_token) in trained
    free = MoCoV3Model("vit_tiny_patch16", dim=8, hidden=16, img_size=32)
    assert all(p.requires_grad for p in free.backbone.patch_embed.parameters())


def test_embed_has_no_predictor_and_query_has_it() -> None:
    model = _model()
    x = two_views()["view1"]
    bb, proj, pred = copy_modules(model.backbone, model.projector, model.predictor)
    with torch.no_grad():
        z = proj(bb(x))
        assert torch.allclose(model.embed(x), F.normalize(z, dim=1), atol=1e-6)
        bb, proj, pred = copy_modules(model.backbone, model.projector, model.predictor)
        assert torch.allclose(model.query(x), F.normalize(pred(proj(bb(x))), dim=1), atol=1e-6)


def test_forward_contrasts_each_views_query_with_the_other_views_keys() -> None:
    model = _model()
    perturb_(model.backbone_k, 1)
    perturb_(model.projector_k, 2)
    batch = two_views(n=6)
    mods = copy_modules(model.backbone, model.projector, model.predictor, model.backbone_k, model.projector_k)
    bb, proj, pred, bb_k, proj_k = mods
    out = model(dict(batch))
    with torch.no_grad():
        q1, q2 = (F.normalize(pred(proj(bb(batch[v]))), dim=1) for v in ("view1", "view2"))
        k1, k2 = (F.normalize(proj_k(bb_k(batch[v])), dim=1) for v in ("view1", "view2"))
    want = _ctr_ref(q1, k2, T) + _ctr_ref(q2, k1, T)
    for other in (_ctr_ref(q1, k1, T) + _ctr_ref(q2, k2, T), 2 * _ctr_ref(q1, k2, T), 2 * _ctr_ref(q2, k1, T)):
        assert abs(other - want) > 1e-3  # the check tells these pairings apart
    assert out["loss"].item() == pytest.approx(want, rel=1e-5)
    assert out["acc"].item() == pytest.approx(100 * ((q1 @ k2.t()).argmax(1) == torch.arange(6)).float().mean())
    assert_params_equal(buffers(model.backbone_k), buffers(bb_k), atol=1e-6, what="key BN statistics")


def test_gradients_reach_the_query_network_and_never_the_keys() -> None:
    model = _model()
    model(two_views())["loss"].backward()
    for name, p in model.named_parameters():
        if name.startswith(("backbone_k.", "projector_k.")):
            assert p.grad is None and not p.requires_grad, name
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for layer in (model.backbone.conv, model.projector[0], model.predictor[0], model.predictor[3]):
        assert layer.weight.grad.abs().sum() > 0
    assert not model.key(two_views()["view1"]).requires_grad


def test_after_step_moves_every_key_parameter_by_the_cosine_momentum() -> None:
    model = _model()
    perturb_(model.backbone_k, 1)
    perturb_(model.projector_k, 2)
    online = {"b": params(model.backbone), "p": params(model.projector), "h": params(model.predictor)}
    kbuf = buffers(model.backbone_k)
    for step in (0, 3, 7):
        m = 1 - (1 - M) * (math.cos(math.pi * (step + 1) / 8) + 1) / 2
        before = {"b": params(model.backbone_k), "p": params(model.projector_k)}
        assert model.after_step(step, 8) == pytest.approx(m, abs=1e-12)
        assert_params_equal(params(model.backbone_k), ema(before["b"], online["b"], m), what="key trunk")
        assert_params_equal(params(model.projector_k), ema(before["p"], online["p"], m), what="key projector")
    assert_params_equal(params(model.backbone), online["b"], atol=0, what="query trunk")
    assert_params_equal(params(model.projector), online["p"], atol=0, what="query projector")
    assert_params_equal(params(model.predictor), online["h"], atol=0, what="predictor")
    assert_params_equal(buffers(model.backbone_k), kbuf, atol=0, what="key buffers")


def test_one_training_step_updates_queries_by_sgd_then_keys_towards_them() -> None:
    model = _model()
    k0, q1 = sgd_step(model, "_k")
    assert not torch.equal(q1["b"]["conv.weight"], k0["b"]["conv.weight"])
    m = model.after_step(0, 4)
    assert m == pytest.approx(1 - (1 - M) * (math.cos(math.pi / 4) + 1) / 2)
    assert_params_equal(params(model.backbone_k), ema(k0["b"], q1["b"], m), what="key trunk")
    assert_params_equal(params(model.projector_k), ema(k0["p"], q1["p"], m), what="key projector")


def test_mocov3_stage_trains_a_mocov3_model_built_from_the_recipe(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import harness_methods.mocov3.stages as stage
    from harness_methods.mocov3 import MoCoV3

    seen = {}
    monkeypatch.setattr(stage, "pretrain", lambda ctx, model: seen.update(ctx=ctx, model=model) or {"loss": 0.25})
    cfg = small_recipe(mocov3={"dim": 8, "hidden": 16, "momentum": 0.97, "temperature": 0.3})
    ctx = stage_context(tmp_path, tmp_path, cfg, method="mocov3")
    assert stage.run(ctx) == {"loss": 0.25}
    model = seen["model"]
    assert type(model) is MoCoV3Model and seen["ctx"] is ctx
    assert (model.momentum, model.temperature, model.predictor_spec["dims"]) == (0.97, 0.3, [8, 16, 8])
    [only] = MoCoV3().stages(cfg)
    assert (only.name, only.run, only.exports_backbone) == ("pretrain", "harness_methods.mocov3.stages:run", True)
