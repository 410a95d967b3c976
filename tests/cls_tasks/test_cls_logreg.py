"""The L-BFGS logistic-regression sweep and the probe protocol on features with known answers."""
from __future__ import annotations

import pytest
import torch

from cls_task_fixtures import gaussian_features
from harness.core.errors import ConfigError
from harness.tasks import logreg
from harness.tasks.probe import ProbeConfig, split_indices, train_probe


def test_sweep_separates_gaussians_with_an_interior_penalty():
    train, val, test = (gaussian_features(60, 0, sep=6.0), gaussian_features(50, 1, sep=6.0),
                        gaussian_features(100, 2, sep=6.0))
    grid = logreg.l2_grid(-6, 5, 45)
    result = logreg.sweep(train.x, train.y, val.x, val.y, 4, grid, max_iter=100, tol=1e-4)
    assert logreg.evaluate(result.head, test.x, test.y) >= 99.0
    assert 0 < result.best_index < len(grid) - 1
    # the strongest penalties shrink the head onto the nuisance-dominated class means
    assert result.val_scores[-1] < 60.0
    assert result.val_scores[result.best_index] == max(result.val_scores)


def test_fit_reaches_the_stationary_point_of_the_stated_objective():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(90, 8, generator=g, dtype=torch.float64)
    y = torch.arange(90) % 3
    x[:, :3] += 1.5 * torch.nn.functional.one_hot(y, 3)
    head, _ = logreg.fit(x, y, 3, l2=1.0, max_iter=200, tol=1e-9)
    w = head.weight.clone().requires_grad_(True)
    b = head.bias.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(x @ w.T + b, y) + 1.0 / (2 * len(x)) * w.square().sum()
    loss.backward()
    assert w.grad.abs().max() < 1e-6 and b.grad.abs().max() < 1e-6


def test_scores_top1_and_mean_per_class():
    target = torch.tensor([0, 0, 0, 0, 1])
    pred = torch.tensor([0, 0, 0, 0, 0])
    assert logreg.score(pred, target, "top1") == pytest.approx(80.0)
    assert logreg.score(pred, target, "mean_per_class") == pytest.approx(50.0)
    with pytest.raises(ValueError):
        logreg.score(pred, target, "top5")


def test_split_indices_is_seeded_and_disjoint():
    a_tr, a_va = split_indices(100, 0.2, seed=0)
    b_tr, b_va = split_indices(100, 0.2, seed=0)
    assert torch.equal(a_va, b_va) and len(a_va) == 20
    assert set(a_tr.tolist()).isdisjoint(a_va.tolist()) and len(a_tr) + len(a_va) == 100
    assert not torch.equal(split_indices(100, 0.2, seed=1)[1], a_va)
    assert len(split_indices(100, 7, seed=0)[1]) == 7
    with pytest.raises(ConfigError):
        split_indices(10, 10, seed=0)


def test_probe_refits_on_train_plus_val():
    train, val, test = gaussian_features(40, 4), gaussian_features(20, 5), gaussian_features(50, 6)
    cfg = ProbeConfig.from_cfg({"l2_grid": {"start": -2, "stop": 3, "num": 6}, "max_iter": 200})
    refit = train_probe(train, val, 4, cfg, "cpu")
    kept = train_probe(train, val, 4, ProbeConfig.from_cfg({**{"l2_grid": {"start": -2, "stop": 3, "num": 6}},
                                                            "max_iter": 200, "refit": False}), "cpu")
    assert refit.sweep.best_l2 == kept.sweep.best_l2
    assert not torch.equal(refit.head.weight, kept.head.weight)
    assert refit.score(test, "top1") >= 97.0
    with pytest.raises(ConfigError):
        ProbeConfig.from_cfg({"metric": "top5"})


def _official_lineval(x, y, xv, yv, n_classes, init, max_iter):
    """ContraCAM's lineval loop, transcribed (nn.Linear, one torch L-BFGS for the grid; it
    runs max_iter=1000, fewer here to keep the test short)."""
    clf = torch.nn.Linear(x.shape[1], n_classes).double()
    with torch.no_grad():
        clf.weight.copy_(init.weight)
        clf.bias.copy_(init.bias)
    opt = torch.optim.LBFGS(clf.parameters(), max_iter=max_iter)
    best_acc, best_w = 0.0, None
    for w in torch.logspace(-6, 5, steps=45).tolist():
        def step():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(clf(x), y)
            for p in clf.parameters():
                loss = loss + p.pow(2).mean().mul(0.5 * w)
            loss.backward()
            return loss
        opt.step(step)
        acc = (clf(xv).argmax(1) == yv).double().mean().item()
        if acc > best_acc:
            best_acc, best_w = acc, (w, clf.weight.detach().clone())
    return best_w


def test_contracam_protocol_is_the_official_lineval():
    train = gaussian_features(60, 0, sep=3.0)
    val = gaussian_features(40, 1, sep=3.0)
    x, y, xv, yv = train.x.double(), train.y, val.x.double(), val.y
    ours = logreg.sweep(x, y, xv, yv, 4, logreg.l2_grid(-6, 5, 45), max_iter=60, protocol="contracam")
    best_l2, weight = _official_lineval(x, y, xv, yv, 4, logreg.contracam_init(x.shape[1], 4, torch.float64), 60)
    assert ours.best_l2 == pytest.approx(best_l2, rel=1e-12)
    assert torch.allclose(ours.head.weight, weight, atol=1e-9)
    with pytest.raises(ConfigError, match="refit"):
        ProbeConfig.from_cfg({"protocol": "contracam"})
    assert ProbeConfig.from_cfg({"protocol": "contracam", "refit": False}).protocol == "contracam"
