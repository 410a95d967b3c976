"""BYOL semantics: the regression loss against a plain computation, the symmetric pairing
of online predictions with the other view's target projection, the predictor on the
online branch only, stop-gradient on the target, the EMA of every target parameter
under both momentum schedules, and the stage glue."""
from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from harness.core.errors import ConfigError
from harness.pretrain.byol import BYOLModel, byol_loss, target_momentum
from pretrain_oracles import (assert_params_equal, buffers, copy_modules, ema, params, perturb_, sgd_step, two_views,
                              use_tiny_trunk)
from pretrain_fixtures import small_recipe, stage_context

M = 0.9


def _model(tiny: bool = True, **kw: Any) -> BYOLModel:
    torch.manual_seed(0)
    model = BYOLModel("resnet18", **{"dim": 16, "hidden": 32, "pred_hidden": 24, "momentum": M, **kw})
    return use_tiny_trunk(model, "backbone_t") if tiny else model


def _loss_ref(p: torch.Tensor, z: torch.Tensor) -> float:
    """Mean over rows of ``|p/|p| - z/|z||^2``, in float64 loops."""
    total = 0.0
    for a, b in zip(p.double().tolist(), z.double().tolist()):
        na, nb = math.sqrt(sum(v * v for v in a)), math.sqrt(sum(v * v for v in b))
        total += sum((x / na - y / nb) ** 2 for x, y in zip(a, b))
    return total / len(p)


def test_byol_loss_is_the_squared_distance_of_unit_vectors() -> None:
    g = torch.Generator().manual_seed(0)
    p, z = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    assert byol_loss(p, z).item() == pytest.approx(_loss_ref(p, z), rel=1e-5)
    assert byol_loss(3 * p, 0.5 * z).item() == pytest.approx(_loss_ref(p, z), rel=1e-5)  # scale-free
    assert byol_loss(p, 2 * p).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(p, -p).item() == pytest.approx(4.0, rel=1e-6)


def test_byol_loss_never_sends_gradient_to_the_target() -> None:
    g = torch.Generator().manual_seed(1)
    p = torch.randn(5, 8, generator=g).requires_grad_()
    z = torch.randn(5, 8, generator=g).requires_grad_()
    byol_loss(p, z).backward()
    assert z.grad is None and p.grad is not None and p.grad.abs().sum() > 0


def test_target_momentum_schedules() -> None:
    assert [target_momentum(0.99, "constant", s, 10) for s in (0, 5, 9)] == [0.99, 0.99, 0.99]
    total, base = 8, 0.99
    cosine = [target_momentum(base, "cosine", s, total) for s in range(total)]
    for s, m in enumerate(cosine):  # after step s: 1 - (1 - base) (cos(pi (s + 1) / total) + 1) / 2
        assert m == pytest.approx(1 - (1 - base) * (math.cos(math.pi * (s + 1) / total) + 1) / 2, abs=1e-12)
    assert cosine[0] > base and cosine[-1] == pytest.approx(1.0, abs=1e-12)
    assert cosine[3] == pytest.approx(1 - (1 - base) / 2, abs=1e-12)  # half-way: half the distance to 1
    assert all(a < b for a, b in zip(cosine, cosine[1:]))
    with pytest.raises(ConfigError, match="momentum_schedule"):
        target_momentum(0.99, "linear", 0, 10)


def test_target_is_a_frozen_copy_of_backbone_and_projector_only() -> None:
    model = _model(tiny=False)
    for online, target in ((model.backbone, model.backbone_t), (model.projector, model.projector_t)):
        assert_params_equal(params(target), params(online), atol=0)
        assert_params_equal(buffers(target), buffers(online), atol=0)
        assert not any(p.requires_grad for p in target.parameters())
        assert not any(a.data_ptr() == b.data_ptr() for a, b in zip(target.parameters(), online.parameters()))
    assert {n for n, _ in model.named_children()} == {"backbone", "projector", "predictor", "backbone_t",
                                                      "projector_t"}
    assert all(p.requires_grad for p in model.predictor.parameters())
    assert model.projector_spec == {"type": "mlp", "dims": [512, 32, 16], "bn": True, "last_bn": False}
    assert model.predictor_spec == {"type": "mlp", "dims": [16, 24, 16], "bn": True, "last_bn": False}
    heads = model.export_heads()
    assert heads["projector"][0] is model.projector and heads["predictor"][0] is model.predictor


def test_defaults_and_recipe_keys() -> None:
    defaults = {k: v.default for k, v in inspect.signature(BYOLModel).parameters.items()}
    assert {k: defaults[k] for k in ("dim", "hidden", "pred_hidden", "momentum", "momentum_schedule")} == \
        {"dim": 256, "hidden": 4096, "pred_hidden": 4096, "momentum": 0.996, "momentum_schedule": "constant"}
    model = BYOLModel.from_cfg({"arch": "resnet18", "zero_init_residual": False,
                                "byol": {"dim": 8, "hidden": 20, "pred_hidden": 12, "momentum": 0.95,
                                         "momentum_schedule": "cosine"}})
    assert (model.momentum, model.momentum_schedule) == (0.95, "cosine")
    assert model.projector_spec["dims"] == [512, 20, 8] and model.predictor_spec["dims"] == [8, 12, 8]
    assert model.backbone.layer1[0].bn2.weight.abs().sum() > 0
    assert BYOLModel.from_cfg({"arch": "resnet18", "byol": {"dim": 8, "hidden": 20, "pred_hidden": 12}}) \
        .backbone.layer1[0].bn2.weight.abs().sum() == 0  # zero_init_residual defaults to on
    with pytest.raises(ConfigError):
        BYOLModel("resnet18", dim=8, hidden=16, pred_hidden=16, momentum_schedule="step")


def test_project_and_embed_use_the_online_projector_without_predictor() -> None:
    model = _model()
    perturb_(model.projector_t, 3)
    x = two_views()["view1"]
    bb, proj = copy_modules(model.backbone, model.projector)
    with torch.no_grad():
        z = proj(bb(x))
        assert torch.allclose(model.project(x), z, atol=1e-6)
        assert torch.allclose(model.embed(x), F.normalize(z, dim=1), atol=1e-6)
        assert torch.allclose(model.embed(x).norm(dim=1), torch.ones(4), atol=1e-5)


def test_forward_regresses_each_views_prediction_on_the_other_views_target() -> None:
    model = _model()
    perturb_(model.backbone_t, 1)
    perturb_(model.projector_t, 2)
    batch = two_views()
    bb, proj, pred, bb_t, proj_t = copy_modules(model.backbone, model.projector, model.predictor,
                                                model.backbone_t, model.projector_t)
    out = model(dict(batch))
    with torch.no_grad():  # each view is its own BN batch, as in two forward passes
        p1, p2 = pred(proj(bb(batch["view1"]))), pred(proj(bb(batch["view2"])))
        z1, z2 = proj_t(bb_t(batch["view1"])), proj_t(bb_t(batch["view2"]))
    want = _loss_ref(p1, z2) + _loss_ref(p2, z1)
    for other in (_loss_ref(p1, z1) + _loss_ref(p2, z2), 2 * _loss_ref(p1, z2), 2 * _loss_ref(p2, z1)):
        assert abs(other - want) > 1e-3  # the check tells these pairings apart
    assert out["loss"].item() == pytest.approx(want, rel=1e-5)
    assert_params_equal(buffers(model.backbone_t), buffers(bb_t), atol=1e-6, what="target BN statistics")
    assert_params_equal(buffers(model.predictor), buffers(pred), atol=1e-6, what="predictor BN statistics")


def test_gradients_reach_the_online_network_and_never_the_target() -> None:
    model = _model()
    model(two_views())["loss"].backward()
    for name, p in model.named_parameters():
        if name.startswith(("backbone_t.", "projector_t.")):
            assert p.grad is None and not p.requires_grad, name
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for head in (model.backbone.conv, model.projector[0], model.predictor[0], model.predictor[-1]):
        assert head.weight.grad.abs().sum() > 0
    assert not model.target(two_views()["view1"]).requires_grad


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_after_step_moves_every_target_parameter_by_the_scheduled_momentum(schedule: str) -> None:
    model = _model(momentum_schedule=schedule)
    perturb_(model.backbone_t, 1)
    perturb_(model.projector_t, 2)
    online = {"b": params(model.backbone), "p": params(model.projector), "h": params(model.predictor)}
    tbuf = buffers(model.backbone_t)
    for step in (0, 4):
        m = M if schedule == "constant" else 1 - (1 - M) * (math.cos(math.pi * (step + 1) / 10) + 1) / 2
        before = {"b": params(model.backbone_t), "p": params(model.projector_t)}
        assert model.after_step(step, 10) == pytest.approx(m, abs=1e-12)
        assert_params_equal(params(model.backbone_t), ema(before["b"], online["b"], m), what="target trunk")
        assert_params_equal(params(model.projector_t), ema(before["p"], online["p"], m), what="target projector")
    assert_params_equal(params(model.backbone), online["b"], atol=0, what="online trunk")
    assert_params_equal(params(model.projector), online["p"], atol=0, what="online projector")
    assert_params_equal(params(model.predictor), online["h"], atol=0, what="predictor")
    assert_params_equal(buffers(model.backbone_t), tbuf, atol=0, what="target buffers")


def test_one_training_step_updates_online_by_sgd_then_target_towards_it() -> None:
    model = _model()
    t0, o1 = sgd_step(model, "_t")
    assert not torch.equal(o1["b"]["conv.weight"], t0["b"]["conv.weight"])
    model.after_step(0, 1)
    assert_params_equal(params(model.backbone_t), ema(t0["b"], o1["b"], M), what="target trunk")
    assert_params_equal(params(model.projector_t), ema(t0["p"], o1["p"], M), what="target projector")


def test_byol_stage_trains_a_byol_model_built_from_the_recipe(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import harness_methods.byol.stages as stage
    from harness_methods.byol import BYOL

    seen = {}
    monkeypatch.setattr(stage, "pretrain", lambda ctx, model: seen.update(ctx=ctx, model=model) or {"loss": 0.5})
    cfg = small_recipe(byol={"dim": 8, "hidden": 16, "pred_hidden": 12, "momentum": 0.97,
                             "momentum_schedule": "cosine"})
    ctx = stage_context(tmp_path, tmp_path, cfg, method="byol")
    assert stage.run(ctx) == {"loss": 0.5}
    model = seen["model"]
    assert type(model) is BYOLModel and seen["ctx"] is ctx
    assert (model.momentum, model.momentum_schedule, model.predictor_spec["dims"]) == (0.97, "cosine", [8, 12, 8])
    [only] = BYOL().stages(cfg)
    assert (only.name, only.run, only.exports_backbone) == ("pretrain", "harness_methods.byol.stages:run", True)
