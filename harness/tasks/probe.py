"""The linear-probe protocol on cached features: split, sweep, refit, score.

Protocol ("How well do self-supervised models transfer?", Ericsson et al. 2021): pick the
L2 penalty on a validation split (the dataset's official one, or a seeded random subset
of train), refit on train + val with that penalty, report the test score. ``refit:
false`` instead keeps the head fitted on train alone, and ``protocol: contracam`` fits
and sweeps as ContraCAM's ``lineval`` (:mod:`harness.tasks.logreg`); the ContraCAM suite
sets both, with its validation sizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from harness.core.errors import ConfigError
from harness.tasks import logreg
from harness.tasks.features import Features


@dataclass(frozen=True)
class ProbeConfig:
    grid: tuple[float, ...]
    metric: str = "top1"
    max_iter: int = 1000
    tol: float = 1e-5
    refit: bool = True
    protocol: str = "ericsson"

    @classmethod
    def from_cfg(cls, cfg: dict[str, Any], metric: str | None = None) -> "ProbeConfig":
        g = cfg.get("l2_grid") or {}
        try:
            grid = tuple(logreg.l2_grid(float(g.get("start", -6)), float(g.get("stop", 5)), int(g.get("num", 45))))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"task config 'l2_grid' must be {{start, stop, num}}, got {g!r} ({exc})") from exc
        metric = metric or cfg.get("metric", "top1")
        if metric not in logreg.METRICS:
            raise ConfigError(f"task config 'metric' must be one of {', '.join(logreg.METRICS)}, got {metric!r}")
        protocol = str(cfg.get("protocol", "ericsson"))
        if protocol not in logreg.PROTOCOLS:
            raise ConfigError(f"task config 'protocol' must be one of {', '.join(logreg.PROTOCOLS)}, got {protocol!r}")
        refit = bool(cfg.get("refit", True))
        if protocol == "contracam" and refit:
            raise ConfigError("task config 'protocol: contracam' keeps the head fitted on train (its lineval): "
                              "set 'refit: false'")
        return cls(grid=grid, metric=metric, max_iter=int(cfg.get("max_iter", 1000)),
                   tol=float(cfg.get("tol", 1e-5)), refit=refit, protocol=protocol)


@dataclass
class Probe:
    """A trained head, its sweep and the number of samples it saw."""

    head: logreg.LinearHead
    sweep: logreg.SweepResult
    n_classes: int
    sizes: dict[str, int]

    def predict(self, feats: Features) -> torch.Tensor:
        """Predicted labels of ``feats`` (on the CPU)."""
        return self.head.predict(feats.x.to(self.head.weight.device)).cpu()

    def score(self, feats: Features, metric: str) -> float:
        return logreg.score(self.predict(feats), feats.y.cpu(), metric)

    def summary(self) -> dict[str, Any]:
        return {"best_l2": self.sweep.best_l2, "l2_grid": self.sweep.l2_grid, "val_scores": self.sweep.val_scores,
                "lbfgs_iterations": self.sweep.iterations, "sizes": self.sizes}


def split_indices(n: int, val_size: float | int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random (train, val) partition of ``range(n)``; ``val_size`` is a count
    (int >= 1) or a fraction (float in (0, 1))."""
    if isinstance(val_size, float) and 0 < val_size < 1:
        n_val = int(round(n * val_size))
    elif isinstance(val_size, int) and not isinstance(val_size, bool) and val_size >= 1:
        n_val = val_size
    else:
        raise ConfigError(f"val_size must be a fraction in (0, 1) or a count >= 1, got {val_size!r}")
    if not 1 <= n_val < n:
        raise ConfigError(f"val_size {val_size!r} leaves no training or no validation sample out of {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def train_probe(train: Features, val: Features, n_classes: int, cfg: ProbeConfig, device: str) -> Probe:
    """Sweep the penalty on (train, val), then refit on train + val when ``cfg.refit``."""
    tr, va = train.to(device), val.to(device)
    result = logreg.sweep(tr.x, tr.y, va.x, va.y, n_classes, cfg.grid, metric=cfg.metric,
                          max_iter=cfg.max_iter, tol=cfg.tol, protocol=cfg.protocol)
    head = result.head
    if cfg.refit:
        both = Features.cat([tr, va])
        head, _ = logreg.fit(both.x, both.y, n_classes, result.best_l2, init=head, max_iter=cfg.max_iter, tol=cfg.tol)
    return Probe(head=head, sweep=result, n_classes=n_classes, sizes={"train": len(train), "val": len(val)})


def probe_with_seeded_val(train: Features, n_classes: int, cfg: dict[str, Any], device: str,
                          metric: str | None = None) -> Probe:
    """The protocol on a training set without an official validation split: hold out a
    seeded ``val_size`` (default 0.2) of it (seed ``split_seed``, default 0) for the sweep."""
    tr_idx, va_idx = split_indices(len(train), cfg.get("val_size", 0.2), int(cfg.get("split_seed", 0)))
    return train_probe(train.subset(tr_idx), train.subset(va_idx), n_classes, ProbeConfig.from_cfg(cfg, metric), device)
