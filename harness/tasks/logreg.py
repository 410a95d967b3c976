"""Multinomial logistic regression on frozen features, fitted with full-batch L-BFGS.

The objective is scikit-learn's ``LogisticRegression(penalty="l2", C=1/l2)`` divided by
the number of training samples::

    mean_i CE(W x_i + b, y_i) + l2 / (2 N) * ||W||_F^2        (the bias is not penalised)

so ``l2`` is the "weight decay" of "How well do self-supervised models transfer?"
(Ericsson et al., who sweep ``C = 1 / l2`` over ``l2`` in logspace(-6, 5, 45)).
:func:`sweep` walks the grid from the strongest to the weakest penalty, warm-starting
each fit from the previous solution, and scores every fit on a validation split.

``sweep(protocol="contracam")`` is ContraCAM's ``lineval`` (alinlab/object-aware-contrastive,
inference.py) instead: objective ``CE + l2 / 2 * (mean(W^2) + mean(b^2))`` (the bias
penalised, means over the entries), one torch L-BFGS with its defaults (no line search,
history 100) stepped once per penalty and kept through the grid, the head initialised
from N(0, 0.01^2) (seeded), the grid walked from the weakest to the strongest penalty,
ties kept at the first (weakest).
Everything runs in torch on the features' device (the GPU when present).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F

METRICS = ("top1", "mean_per_class")
PROTOCOLS = ("ericsson", "contracam")


@dataclass
class LinearHead:
    """Weights ``(K, D)`` and bias ``(K,)`` of a linear classifier."""

    weight: torch.Tensor
    bias: torch.Tensor

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.weight.dtype) @ self.weight.T + self.bias

    def predict(self, x: torch.Tensor, batch: int = 65536) -> torch.Tensor:
        return torch.cat([self.logits(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])

    def clone(self) -> "LinearHead":
        return LinearHead(self.weight.detach().clone(), self.bias.detach().clone())


@dataclass
class SweepResult:
    """The chosen penalty and head, and the validation curve of the whole grid."""

    best_l2: float
    best_index: int
    head: LinearHead
    l2_grid: list[float]
    val_scores: list[float]
    val_losses: list[float]
    iterations: list[int] = field(default_factory=list)


def l2_grid(start: float = -6.0, stop: float = 5.0, num: int = 45) -> list[float]:
    """``logspace(start, stop, num)`` as floats (the published grid is -6, 5, 45)."""
    if num < 1:
        raise ValueError(f"l2 grid needs at least one value, got num={num}")
    return torch.logspace(start, stop, num, dtype=torch.float64).tolist()


def score(pred: torch.Tensor, target: torch.Tensor, metric: str = "top1") -> float:
    """Accuracy in percent: ``top1`` or ``mean_per_class`` (mean over the classes present)."""
    if len(target) == 0:
        raise ValueError("cannot score an empty set")
    correct = (pred == target).double()
    if metric == "top1":
        return float(correct.mean() * 100.0)
    if metric == "mean_per_class":
        classes = target.unique()
        per_class = torch.stack([correct[target == c].mean() for c in classes])
        return float(per_class.mean() * 100.0)
    raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")


def _init_head(dim: int, n_classes: int, device: torch.device, dtype: torch.dtype) -> LinearHead:
    return LinearHead(torch.zeros(n_classes, dim, device=device, dtype=dtype),
                      torch.zeros(n_classes, device=device, dtype=dtype))


def fit(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float, init: LinearHead | None = None,
        max_iter: int = 1000, tol: float = 1e-5, history_size: int = 10) -> tuple[LinearHead, int]:
    """Minimise the penalised cross-entropy from ``init`` (zeros if None).

    ``tol`` bounds the largest absolute gradient entry at convergence (scipy's ``pgtol``,
    scikit-learn's ``tol``). Returns the head and the number of L-BFGS iterations.
    """
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"expected features (N, D) and N labels, got {tuple(x.shape)} and {tuple(y.shape)}")
    head = init.clone() if init is not None else _init_head(x.shape[1], n_classes, x.device, x.dtype)
    w = head.weight.requires_grad_(True)
    b = head.bias.requires_grad_(True)
    coef = l2 / (2.0 * len(x))
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, max_eval=int(max_iter * 1.25),
                            tolerance_grad=tol, tolerance_change=1e-12, history_size=history_size,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y) + coef * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    n_iter = int(opt.state[w].get("n_iter", 0))
    return LinearHead(w.detach(), b.detach()), n_iter


def contracam_init(dim: int, n_classes: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> LinearHead:
    """ContraCAM's initial head: every entry from N(0, 0.01^2) (seeded here)."""
    gen = torch.Generator().manual_seed(seed)
    return LinearHead(torch.randn(n_classes, dim, generator=gen, dtype=dtype) * 0.01,
                      torch.randn(n_classes, generator=gen, dtype=dtype) * 0.01)


def _contracam_sweep(x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
                     n_classes: int, grid: Sequence[float], metric: str, max_iter: int) -> SweepResult:
    """ContraCAM's ``lineval``: one head and one L-BFGS (torch's defaults) through the whole
    grid, weakest penalty first; penalty ``l2 / 2 * (mean(W^2) + mean(b^2))``; the first
    best validation score wins."""
    head = contracam_init(x_train.shape[1], n_classes, x_train.dtype)
    w = head.weight.to(x_train.device).requires_grad_(True)
    b = head.bias.to(x_train.device).requires_grad_(True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter)
    order = sorted(range(len(grid)), key=lambda i: grid[i])
    values = torch.tensor(list(grid), dtype=torch.float32).tolist()  # its grid is float32 logspace
    scores, losses, iters = [0.0] * len(grid), [0.0] * len(grid), [0] * len(grid)
    best: int | None = None
    best_head: LinearHead | None = None
    for i in order:
        def closure(l2: float = values[i]) -> torch.Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(F.linear(x_train, w, b), y_train)
            for p in (w, b):
                loss = loss + p.pow(2).mean().mul(0.5 * l2)
            loss.backward()
            return loss

        before = int(opt.state[w].get("n_iter", 0)) if w in opt.state else 0
        opt.step(closure)
        iters[i] = int(opt.state[w].get("n_iter", 0)) - before
        current = LinearHead(w.detach().clone(), b.detach().clone())
        scores[i] = evaluate(current, x_val, y_val, metric)
        losses[i] = _val_loss(current, x_val, y_val)
        if best is None or scores[i] > scores[best]:
            best, best_head = i, current
    assert best is not None and best_head is not None
    return SweepResult(best_l2=float(grid[best]), best_index=best, head=best_head, l2_grid=list(map(float, grid)),
                       val_scores=scores, val_losses=losses, iterations=iters)


def evaluate(head: LinearHead, x: torch.Tensor, y: torch.Tensor, metric: str = "top1") -> float:
    """Accuracy (percent) of ``head`` on ``(x, y)``."""
    return score(head.predict(x), y, metric)


def _val_loss(head: LinearHead, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(head.logits(x), y))


def sweep(x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
          n_classes: int, grid: Sequence[float], metric: str = "top1", max_iter: int = 1000,
          tol: float = 1e-5, protocol: str = "ericsson") -> SweepResult:
    """Fit one head per penalty (strongest first, warm-started) and pick the best on val.

    The best penalty has the highest validation ``metric``; ties go to the stronger
    penalty (the simpler model), so that on a grid where many penalties reach the same
    accuracy (separable data) the choice does not drift to the unregularised end.
    ContraCAM's protocol walks the grid weakest first and keeps the first best.
    """
    if not grid:
        raise ValueError("empty l2 grid")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown probe protocol {protocol!r}; expected one of {PROTOCOLS}")
    if protocol == "contracam":
        return _contracam_sweep(x_train, y_train, x_val, y_val, n_classes, grid, metric, max_iter)
    order = sorted(range(len(grid)), key=lambda i: -grid[i])
    scores: list[float] = [0.0] * len(grid)
    losses: list[float] = [0.0] * len(grid)
    iters: list[int] = [0] * len(grid)
    heads: dict[int, LinearHead] = {}
    head: LinearHead | None = None
    best: int | None = None
    for i in order:
        head, iters[i] = fit(x_train, y_train, n_classes, grid[i], init=head, max_iter=max_iter, tol=tol)
        scores[i] = evaluate(head, x_val, y_val, metric)
        losses[i] = _val_loss(head, x_val, y_val)
        if best is None or scores[i] > scores[best]:
            best = i
            heads = {i: head.clone()}
    assert best is not None
    return SweepResult(best_l2=float(grid[best]), best_index=best, head=heads[best], l2_grid=list(map(float, grid)),
                       val_scores=scores, val_losses=losses, iterations=iters)
