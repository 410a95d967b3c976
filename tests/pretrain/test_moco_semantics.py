"""MoCo v2 semantics: the key queue as a FIFO, InfoNCE against a plain computation, which
view each encoder sees, stop-gradient on keys, the momentum update of every key
parameter, Shuffle BN on the keys, and the stage glue."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.core.errors import ConfigError
from harness.pretrain.augment import StepRNG
from harness.pretrain.moco import KeyQueue, MoCoV2Model, info_nce
from pretrain_oracles import (assert_frozen_copy, assert_params_equal, buffers, copy_modules, ema, fifo_push,
                              info_nce_ref, params, perturb_, sgd_step, two_views, unit_rows, use_tiny_trunk)
from pretrain_fixtures import small_recipe, stage_context

M, T = 0.9, 0.2


def _model(tiny: bool = True, **kw: Any) -> MoCoV2Model:
    """A small MoCo v2 model; ``tiny``: with a :class:`TinyTrunk` query/key trunk pair (fast
    forward and backward passes), else the real ResNet-18 trunks."""
    torch.manual_seed(0)
    model = MoCoV2Model("resnet18", **{"dim": 16, "hidden": 32, "queue": 12, "momentum": M, "temperature": T, **kw})
    return use_tiny_trunk(model, "backbone_k") if tiny else model


# ---------------------------------------------------------------- the queue
def test_queue_starts_as_random_unit_keys_at_pointer_zero() -> None:
    torch.manual_seed(0)
    q = KeyQueue(8, 10)
    assert q.keys.shape == (8, 10) and q.keys.dtype == torch.float32
    assert torch.allclose(q.keys.norm(dim=0), torch.ones(10), atol=1e-6)  # each column a key
    assert int(q.ptr) == 0 and q.ptr.dtype == torch.long
    assert torch.cdist(q.keys.t(), q.keys.t()).triu(1).max() > 0.1  # random, not one repeated key
    assert {n for n, _ in q.named_buffers()} == {"keys", "ptr"}  # checkpointed with the model
    with pytest.raises(ConfigError):
        KeyQueue(8, 0)


def test_queue_push_is_a_fifo_that_wraps_around() -> None:
    torch.manual_seed(0)
    queue = KeyQueue(5, 7)
    ref, ptr = queue.keys.clone(), 0
    g = torch.Generator().manual_seed(3)
    for n in (3, 3, 3, 1, 7, 14, 2, 6):  # wraps, a whole queue, two whole queues
        new = unit_rows(n, 5, g)
        queue.push(new)
        ref, ptr = fifo_push(ref, ptr, new)
        assert int(queue.ptr) == ptr, n
        assert torch.equal(queue.keys, ref), n


def test_push_of_more_keys_than_the_queue_holds_the_newest() -> None:
    torch.manual_seed(0)
    queue = KeyQueue(4, 6)
    queue.push(unit_rows(2, 4, torch.Generator().manual_seed(0)))
    new = unit_rows(9, 4, torch.Generator().manual_seed(1))
    queue.push(new)
    # the newest six, oldest first from the pointer on, and the pointer at the oldest
    assert int(queue.ptr) == 2
    assert torch.equal(queue.keys[:, [2, 3, 4, 5, 0, 1]], new[-6:].t())
    last = unit_rows(1, 4, torch.Generator().manual_seed(2))
    queue.push(last)  # overwrites the oldest key held
    assert torch.equal(queue.keys[:, 2], last[0]) and int(queue.ptr) == 3


def test_push_stores_keys_in_the_queue_dtype_without_gradient() -> None:
    queue = KeyQueue(4, 6)
    new = unit_rows(3, 4, torch.Generator().manual_seed(0)).double().requires_grad_()
    queue.push(new)
    assert queue.keys.dtype == torch.float32 and not queue.keys.requires_grad
    assert torch.allclose(queue.keys[:, :3], new.detach().float().t())


# ---------------------------------------------------------------- InfoNCE
@pytest.mark.parametrize("temperature", [0.07, 0.2, 1.0])
def test_info_nce_matches_a_plain_cross_entropy(temperature: float) -> None:
    g = torch.Generator().manual_seed(0)
    q, k, queue = unit_rows(6, 8, g), unit_rows(6, 8, g), unit_rows(11, 8, g).t()
    loss, acc = info_nce(q, k, queue, temperature)
    want, want_acc = info_nce_ref(q, k, queue, temperature)
    assert loss.ndim == 0 and loss.item() == pytest.approx(want, rel=1e-5)
    assert acc.item() == pytest.approx(want_acc)


def test_info_nce_accuracy_counts_rows_whose_positive_wins() -> None:
    g = torch.Generator().manual_seed(1)
    q, queue = unit_rows(6, 8, g), unit_rows(5, 8, g).t()
    k = torch.cat([q[:3], -q[3:]])  # cos 1 (always the top logit) or -1 (always the bottom)
    loss, acc = info_nce(q, k, queue, 0.5)
    assert acc.item() == pytest.approx(50.0)
    assert loss.item() == pytest.approx(info_nce_ref(q, k, queue, 0.5)[0], rel=1e-5)


def test_info_nce_gradient_is_that_of_the_plain_loss() -> None:
    g = torch.Generator().manual_seed(2)
    q, k, queue = unit_rows(5, 8, g), unit_rows(5, 8, g), unit_rows(9, 8, g).t()
    q32 = q.clone().requires_grad_()
    info_nce(q32, k, queue, 0.2)[0].backward()
    q64 = q.double().requires_grad_()
    logits = torch.cat([(q64 * k.double()).sum(1, keepdim=True), q64 @ queue.double()], 1) / 0.2
    (-logits.log_softmax(1)[:, 0].mean()).backward()
    assert torch.allclose(q32.grad.double(), q64.grad, atol=1e-6)


# ---------------------------------------------------------------- the model
def test_key_encoder_starts_as_a_frozen_copy_of_the_query_encoder() -> None:
    model = _model(tiny=False)
    for online, key in ((model.backbone, model.backbone_k), (model.projector, model.projector_k)):
        assert_frozen_copy(online, key)
    assert model.queue.keys.shape == (16, 12)
    assert torch.allclose(model.queue.keys.norm(dim=0), torch.ones(12), atol=1e-6)
    heads = model.export_heads()
    assert set(heads) == {"projector"} and heads["projector"][0] is model.projector
    assert heads["projector"][1] == {"type": "mlp", "dims": [512, 32, 16], "bn": True, "last_bn": False}


def test_constructor_defaults_are_the_moco_v2_values() -> None:
    defaults = {k: v.default for k, v in inspect.signature(MoCoV2Model).parameters.items()}
    assert {k: defaults[k] for k in ("dim", "hidden", "queue", "momentum", "temperature", "projector_bn",
                                     "shuffle_bn")} == {"dim": 128, "hidden": None, "queue": 65536,
                                                        "momentum": 0.999, "temperature": 0.2,
                                                        "projector_bn": True, "shuffle_bn": False}
    with torch.device("meta"):
        model = MoCoV2Model("resnet50")
    assert model.projector_spec["dims"] == [2048, 2048, 128]  # hidden defaults to the feature size
    assert (model.momentum, model.temperature, model.queue.keys.shape) == (0.999, 0.2, (128, 65536))


def test_from_cfg_passes_every_moco_key() -> None:
    cfg = {"arch": "resnet18", "zero_init_residual": False,
           "moco": {"dim": 8, "hidden": 24, "queue": 20, "momentum": 0.95, "temperature": 0.07,
                    "projector_bn": False, "shuffle_bn": True, "shuffle_bn_groups": 2}}
    model = MoCoV2Model.from_cfg(cfg)
    assert (model.momentum, model.temperature, model.shuffle_groups) == (0.95, 0.07, 2)
    assert model.queue.keys.shape == (8, 20)
    assert [type(m) for m in model.projector] == [nn.Linear, nn.ReLU, nn.Linear]
    assert model.projector[0].bias is not None and model.projector[0].out_features == 24
    assert any(m.weight.abs().sum() > 0 for m in (model.backbone.layer1[0].bn2,))  # not zero-initialised
    zero = MoCoV2Model.from_cfg({"arch": "resnet18", "moco": {"dim": 8, "hidden": 24, "queue": 20}})
    assert zero.backbone.layer1[0].bn2.weight.abs().sum() == 0  # zero_init_residual defaults to on
    assert zero.shuffle_groups == 0
    with pytest.raises(ConfigError):
        MoCoV2Model.from_cfg({"arch": "resnet18", "moco": {"dimm": 8}})


def test_embed_is_the_normalised_query_projection() -> None:
    model = _model()
    perturb_(model.projector_k, 4)
    x = two_views()["view1"]
    bb, proj = copy_modules(model.backbone, model.projector)
    out = model.embed(x)
    assert torch.allclose(out, F.normalize(proj(bb(x)), dim=1), atol=1e-6)
    assert torch.allclose(out.norm(dim=1), torch.ones(4), atol=1e-5)


def test_forward_contrasts_query_of_view1_with_key_of_view2_and_the_old_queue() -> None:
    model = _model()
    perturb_(model.backbone_k, 1)
    perturb_(model.projector_k, 2)
    batch = two_views()
    bb, proj, bb_k, proj_k = copy_modules(model.backbone, model.projector, model.backbone_k, model.projector_k)
    queue0 = model.queue.keys.clone()
    out = model(dict(batch))
    with torch.no_grad():
        q = F.normalize(proj(bb(batch["view1"])), dim=1)
        k = F.normalize(proj_k(bb_k(batch["view2"])), dim=1)
        bb2, proj2, bb_k2, proj_k2 = copy_modules(bb, proj, bb_k, proj_k)
        swapped = F.normalize(proj2(bb2(batch["view2"])), dim=1), F.normalize(proj_k2(bb_k2(batch["view1"])), dim=1)
    want, want_acc = info_nce_ref(q, k, queue0, T)
    assert abs(info_nce_ref(*swapped, queue0, T)[0] - want) > 1e-3  # the check tells the views apart
    assert out["loss"].item() == pytest.approx(want, rel=1e-5)
    assert out["acc"].item() == pytest.approx(want_acc)
    ref_keys, ref_ptr = fifo_push(queue0, 0, k)  # this step's keys enqueued after the loss
    assert int(model.queue.ptr) == ref_ptr and torch.allclose(model.queue.keys, ref_keys, atol=1e-6)
    # both encoders ran in training mode: BN running statistics of their own view
    assert_params_equal(buffers(model.backbone_k), buffers(bb_k), atol=1e-6, what="key BN statistics")
    assert_params_equal(buffers(model.backbone), buffers(bb), atol=1e-6, what="query BN statistics")


def test_gradients_reach_the_query_encoder_and_never_the_keys() -> None:
    model = _model()
    out = model(two_views())
    out["loss"].backward()
    for name, p in model.named_parameters():
        if name.startswith(("backbone_k.", "projector_k.")):
            assert p.grad is None and not p.requires_grad, name
        else:
            assert p.grad is not None, name
    assert model.backbone.conv.weight.grad.abs().sum() > 0
    assert model.projector[0].weight.grad.abs().sum() > 0 and model.projector[-1].weight.grad.abs().sum() > 0
    assert not model.queue.keys.requires_grad
    assert not model.embed_key(two_views()["view2"]).requires_grad


def test_after_step_moves_every_key_parameter_by_a_constant_momentum() -> None:
    model = _model()
    perturb_(model.backbone_k, 1)
    perturb_(model.projector_k, 2)
    online = {"b": params(model.backbone), "p": params(model.projector)}
    kbuf = buffers(model.backbone_k)
    for step in (0, 9):  # the first and the last step of ten: the same momentum
        before = {"b": params(model.backbone_k), "p": params(model.projector_k)}
        assert model.after_step(step, 10) == M
        assert_params_equal(params(model.backbone_k), ema(before["b"], online["b"], M), what="key trunk")
        assert_params_equal(params(model.projector_k), ema(before["p"], online["p"], M), what="key projector")
    assert_params_equal(params(model.backbone), online["b"], atol=0, what="query trunk")
    assert_params_equal(params(model.projector), online["p"], atol=0, what="query projector")
    assert_params_equal(buffers(model.backbone_k), kbuf, atol=0, what="key buffers")  # left to its forward


def test_one_training_step_updates_query_by_sgd_then_keys_towards_it() -> None:
    model = _model()
    k0, q1 = sgd_step(model, "_k")
    assert not torch.equal(q1["p"]["0.weight"], k0["p"]["0.weight"])
    assert not torch.equal(q1["b"]["conv.weight"], k0["b"]["conv.weight"])
    model.after_step(0, 1)
    assert_params_equal(params(model.backbone_k), ema(k0["b"], q1["b"], M), what="key trunk")
    assert_params_equal(params(model.projector_k), ema(k0["p"], q1["p"], M), what="key projector")


def test_shuffle_bn_keys_are_encoded_in_shuffled_groups_and_returned_in_order() -> None:
    model = _model(shuffle_bn=True, shuffle_bn_groups=2)
    perturb_(model.backbone_k, 1)
    batch = two_views(n=8)
    bb_k, proj_k = copy_modules(model.backbone_k, model.projector_k)
    perm = torch.randperm(8, generator=StepRNG(0, 3).generator)
    assert not torch.equal(perm[perm], torch.arange(8))  # its own inverse would hide a missing un-shuffle
    with torch.no_grad():
        enc = [F.normalize(proj_k(bb_k(chunk)), dim=1) for chunk in batch["view2"][perm].chunk(2)]
        k = torch.empty(8, 16)
        k[perm] = torch.cat(enc)
        plain = F.normalize(proj_k(bb_k(batch["view2"])), dim=1)
    assert not torch.allclose(k, plain, atol=1e-3)  # per-group BN statistics matter
    model(dict(batch, rng=StepRNG(0, 3)))
    assert torch.allclose(model.queue.keys[:, :8].t(), k, atol=1e-5)
    with pytest.raises(ValueError, match="generator"):
        model(dict(batch))


# ---------------------------------------------------------------- the stage
def test_mocov2_stage_trains_a_moco_v2_model_built_from_the_recipe(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import harness_methods.mocov2.stages as stage
    from harness_methods.mocov2 import MoCoV2

    seen = {}

    def fake_pretrain(ctx: Any, model: Any) -> dict[str, Any]:
        seen.update(ctx=ctx, model=model)
        return {"loss": 1.5}

    monkeypatch.setattr(stage, "pretrain", fake_pretrain)
    cfg = small_recipe(moco={"dim": 8, "hidden": 16, "queue": 24, "momentum": 0.97, "temperature": 0.1})
    ctx = stage_context(tmp_path, tmp_path, cfg)
    assert stage.run(ctx) == {"loss": 1.5}
    model = seen["model"]
    assert type(model) is MoCoV2Model and seen["ctx"] is ctx
    assert (model.momentum, model.temperature, model.queue.keys.shape) == (0.97, 0.1, (8, 24))
    [only] = MoCoV2().stages(cfg)
    assert (only.name, only.run, only.exports_backbone) == ("pretrain", "harness_methods.mocov2.stages:run", True)


def test_paper_recipe_has_the_moco_v2_hyperparameters() -> None:
    from harness.core import registry
    from harness.pretrain.loop import LoopConfig

    recipe = registry.load_recipe("mocov2", "paper")
    optim = LoopConfig.from_recipe(recipe).optim
    assert (optim.name, optim.lr, optim.base_batch, optim.momentum, optim.weight_decay, optim.schedule) == \
        ("sgd", 0.03, 256, 0.9, 1e-4, "cosine")  # Chen et al. 2020 (MoCo v2), Sec. 2
    with torch.device("meta"):
        model = MoCoV2Model.from_cfg(recipe)
    assert (model.queue.keys.shape, model.momentum, model.temperature) == ((128, 65536), 0.999, 0.2)
    assert model.projector_spec["dims"] == [2048, 2048, 128]
