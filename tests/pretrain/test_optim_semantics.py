"""Optimiser semantics: learning-rate schedule values (batch scaling, linear warm-up,
cosine, per-epoch steps), LARS against a plain implementation (trust ratio, weight
decay, momentum, excluded biases and norms), parameter groups, and the built optimisers."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn as nn

from harness.core.errors import ConfigError
from harness.pretrain.optim import LARS, OptimConfig, build_optimizer, lr_at, param_groups, set_lr


def _cfg(**kw) -> OptimConfig:
    return dataclasses.replace(OptimConfig(), **kw)


def _lr_ref(lr: float, base: int, batch: int, warmup: float, epochs: int, spe: int, min_lr: float,
            step: int, cosine: bool = True) -> float:
    """Peak ``lr * batch / base``; linear warm-up that reaches the peak at the end of the
    warm-up steps; then cosine (or constant) over the remaining steps."""
    peak = lr * batch / base
    warm_steps = warmup * spe
    if step < warm_steps:
        return peak * (step + 1) / warm_steps
    if not cosine:
        return peak
    progress = (step - warm_steps) / (epochs * spe - warm_steps)
    return min_lr + (peak - min_lr) * (1 + math.cos(math.pi * progress)) / 2


def test_lr_values_of_a_warmed_up_cosine_schedule() -> None:
    cfg = _cfg(lr=0.1, base_batch=256, warmup_epochs=2, min_lr=0.0)
    lr = [lr_at(cfg, s, 10, 10, 512) for s in range(100)]  # peak 0.2, 20 warm-up steps
    assert lr[0] == pytest.approx(0.01) and lr[9] == pytest.approx(0.1) and lr[19] == pytest.approx(0.2)
    assert lr[20] == pytest.approx(0.2) and lr[60] == pytest.approx(0.1)
    assert lr[99] == pytest.approx(0.1 * (1 + math.cos(math.pi * 79 / 80)))
    assert all(b > a for a, b in zip(lr[:19], lr[1:20])) and all(b < a for a, b in zip(lr[20:-1], lr[21:]))
    floor = _cfg(lr=0.1, base_batch=256, warmup_epochs=2, min_lr=0.02)
    assert lr_at(floor, 60, 10, 10, 512) == pytest.approx(0.11)
    assert lr_at(floor, 20, 10, 10, 512) == pytest.approx(0.2)


@pytest.mark.parametrize("lr,base,batch,warmup,epochs,spe,min_lr", [
    (0.03, 256, 256, 0, 5, 7, 0.0), (0.3, 256, 64, 1, 4, 5, 0.0), (1.5e-4, 256, 4096, 3, 9, 4, 1e-6),
    (0.05, 128, 32, 0.5, 3, 10, 0.001)])
def test_lr_schedule_on_a_grid_of_configurations(lr: float, base: int, batch: int, warmup: float, epochs: int,
                                                 spe: int, min_lr: float) -> None:
    cfg = _cfg(lr=lr, base_batch=base, warmup_epochs=warmup, min_lr=min_lr)
    const = _cfg(lr=lr, base_batch=base, warmup_epochs=warmup, schedule="constant")
    for step in range(epochs * spe):
        assert lr_at(cfg, step, spe, epochs, batch) == pytest.approx(
            _lr_ref(lr, base, batch, warmup, epochs, spe, min_lr, step), rel=1e-9, abs=1e-15), step
        assert lr_at(const, step, spe, epochs, batch) == pytest.approx(
            _lr_ref(lr, base, batch, warmup, epochs, spe, 0.0, step, cosine=False), rel=1e-9), step


def test_epoch_unit_holds_the_lr_for_a_whole_epoch() -> None:
    cfg = _cfg(lr=0.1, base_batch=256, warmup_epochs=2, unit="epoch")
    lr = [lr_at(cfg, s, 10, 10, 512) for s in range(100)]
    for e in range(10):
        assert len(set(lr[10 * e:10 * (e + 1)])) == 1, e
    assert lr[0] == pytest.approx(0.1) and lr[10] == pytest.approx(0.2)  # warm-up reaches the peak by epoch 1
    assert lr[20] == pytest.approx(0.2) and lr[60] == pytest.approx(0.1)
    assert lr[90] == pytest.approx(0.1 * (1 + math.cos(math.pi * 7 / 8)))


def test_recipe_sections_map_onto_the_config() -> None:
    cfg = OptimConfig.from_recipe({"optimizer": {"name": "lars", "lr": 0.2, "base_batch": 128, "momentum": 0.8,
                                                 "weight_decay": 1e-6, "nesterov": True, "lars_eta": 0.02,
                                                 "exclude_bias_bn": True, "betas": [0.5, 0.6]},
                                   "schedule": {"name": "constant", "warmup_epochs": 3, "min_lr": 0.01,
                                                "unit": "epoch"}})
    assert cfg == OptimConfig("lars", 0.2, 128, 0.8, 1e-6, True, 0.02, True, (0.5, 0.6), "constant", 3, 0.01,
                              "epoch")
    default = OptimConfig.from_recipe({})
    assert (default.name, default.lr, default.base_batch, default.momentum, default.weight_decay, default.schedule,
            default.warmup_epochs, default.unit, default.exclude_bias_bn) == \
        ("sgd", 0.03, 256, 0.9, 1e-4, "cosine", 0.0, "step", False)
    for bad in ({"schedule": {"name": "step"}}, {"schedule": {"unit": "iter"}}, {"optimizer": {"lrr": 1}}):
        with pytest.raises(ConfigError):
            OptimConfig.from_recipe(bad)


class _Net(nn.Module):
    """Matrices, biases, a norm layer, a frozen parameter and a zero-initialised matrix."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(6, 5)
        self.bn = nn.BatchNorm1d(5)
        self.zero = nn.Linear(5, 3, bias=False)
        nn.init.zeros_(self.zero.weight)
        self.frozen = nn.Parameter(torch.ones(4), requires_grad=False)


def test_param_groups_split_off_biases_and_norms_and_skip_frozen() -> None:
    net = _Net()
    [only] = param_groups(net, _cfg())
    assert [id(p) for p in only["params"]] == [id(p) for p in net.parameters() if p.requires_grad]
    matrices, flat = param_groups(net, _cfg(exclude_bias_bn=True))
    assert {id(p) for p in matrices["params"]} == {id(net.fc.weight), id(net.zero.weight)}
    assert {id(p) for p in flat["params"]} == {id(net.fc.bias), id(net.bn.weight), id(net.bn.bias)}
    assert flat["weight_decay"] == 0.0 and flat["lars_exclude"] is True
    assert "weight_decay" not in matrices and not matrices.get("lars_exclude", False)


def test_custom_param_groups_take_precedence() -> None:
    net = _Net()
    net.param_groups = lambda: [{"params": [net.fc.weight, net.frozen], "lr_mult": 0.1},
                                {"params": [net.frozen], "weight_decay": 0.5}]
    [group] = param_groups(net, _cfg(exclude_bias_bn=True))
    assert group["params"] == [net.fc.weight] and group["lr_mult"] == 0.1
    opt = build_optimizer(net, _cfg(lr=0.4))
    set_lr(opt, 2.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2)
    plain = build_optimizer(_Net(), _cfg())
    set_lr(plain, 2.0)
    assert plain.param_groups[0]["lr"] == 2.0


def test_built_optimisers_carry_the_recipe_settings() -> None:
    sgd = build_optimizer(_Net(), _cfg(momentum=0.8, weight_decay=1e-3, nesterov=True, exclude_bias_bn=True))
    assert type(sgd) is torch.optim.SGD and (sgd.defaults["momentum"], sgd.defaults["nesterov"]) == (0.8, True)
    assert [g["weight_decay"] for g in sgd.param_groups] == [1e-3, 0.0]
    assert all("lars_exclude" not in g for g in sgd.param_groups)
    adamw = build_optimizer(_Net(), _cfg(name="adamw", betas=(0.7, 0.95), weight_decay=0.05))
    assert type(adamw) is torch.optim.AdamW and adamw.defaults["betas"] == (0.7, 0.95)
    assert adamw.param_groups[0]["weight_decay"] == 0.05
    lars = build_optimizer(_Net(), _cfg(name="lars", momentum=0.85, weight_decay=1e-5, lars_eta=0.02,
                                        exclude_bias_bn=True))
    assert type(lars) is LARS
    assert (lars.defaults["momentum"], lars.defaults["weight_decay"], lars.defaults["eta"]) == (0.85, 1e-5, 0.02)
    assert [g["lars_exclude"] for g in lars.param_groups] == [False, True]
    frozen = nn.Linear(2, 2).requires_grad_(False)
    for exclude in (True, False):
        with pytest.raises(ConfigError, match="no trainable"):
            build_optimizer(frozen, _cfg(exclude_bias_bn=exclude))


def _lars_ref(w: list[torch.Tensor], grads: list[list[torch.Tensor]], lr: float, momentum: float, wd: list[float],
              eta: float, adapt: list[bool]) -> list[torch.Tensor]:
    """Plain LARS in float64: ``d = g + wd w``, scaled by ``eta |w| / |d|`` (1 when either
    norm is 0) where adapted; heavy-ball momentum ``v = momentum v + d``; ``w -= lr v``."""
    w = [x.double().clone() for x in w]
    v = [None] * len(w)
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            d = g.double() + wd[i] * w[i]
            if adapt[i]:
                wn, dn = w[i].norm().item(), d.norm().item()
                d = d * (eta * wn / dn if wn > 0 and dn > 0 else 1.0)
            v[i] = d if v[i] is None else momentum * v[i] + d
            w[i] = w[i] - lr * v[i]
    return w


@pytest.mark.parametrize("exclude", [True, False])
def test_lars_matches_a_plain_implementation(exclude: bool) -> None:
    net = _Net()
    cfg = _cfg(name="lars", lr=0.5, momentum=0.9, weight_decay=0.01, lars_eta=0.02, exclude_bias_bn=exclude)
    opt = build_optimizer(net, cfg)
    trained = [p for p in net.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in trained]
    g = torch.Generator().manual_seed(5)
    grads = [[torch.randn(p.shape, generator=g) for p in trained] for _ in range(3)]
    for step_grads in grads:
        for p, gr in zip(trained, step_grads):
            p.grad = gr.clone()
        opt.step()
    flat = [p.ndim <= 1 and exclude for p in trained]
    want = _lars_ref(start, grads, 0.5, 0.9, [0.0 if f else 0.01 for f in flat], 0.02, [not f for f in flat])
    for p, w, name in zip(trained, want, [n for n, p in net.named_parameters() if p.requires_grad]):
        assert torch.allclose(p.detach().double(), w, atol=1e-6, rtol=1e-5), name
    assert torch.equal(net.frozen, torch.ones(4))


def test_lars_trust_ratio_scales_a_step_to_eta_times_the_weight_norm() -> None:
    w = nn.Parameter(torch.full((4, 4), 0.5))  # |w| = 2
    opt = LARS([w], lr=1.0, momentum=0.9, weight_decay=0.0, eta=0.01)
    w.grad = torch.full((4, 4), 10.0)
    opt.step()
    assert torch.allclose(w.detach(), torch.full((4, 4), 0.5 - 0.01 * 2 / 4))  # step of norm eta |w|
    bias = nn.Parameter(torch.ones(3))
    excluded = LARS([{"params": [bias], "lars_exclude": True}], lr=0.1, momentum=0.9, eta=0.01)
    bias.grad = torch.full((3,), 2.0)
    excluded.step()
    assert torch.allclose(bias.detach(), torch.full((3,), 0.8))  # a plain SGD step
