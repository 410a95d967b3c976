"""Optimisers (SGD, LARS, AdamW) and the per-step learning-rate schedule of the pretraining loop."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.nn as nn

from harness.core.config_section import recipe_section
from harness.core.errors import ConfigError


@dataclass(frozen=True)
class OptimConfig:
    """Recipe sections ``optimizer`` and ``schedule``.

    Peak lr = ``lr * batch_size / base_batch``. ``schedule``: ``cosine`` (from the peak to
    ``min_lr`` over the epochs after warm-up) or ``constant``; warm-up is linear from 0 over
    ``warmup_epochs``. ``unit``: ``step`` updates the lr every step, ``epoch`` once per
    epoch (the reference MoCo v2 code). ``exclude_bias_bn``: no weight decay (nor LARS
    adaptation) for biases and normalisation parameters (all parameters with ndim <= 1).
    ``adamw`` (the ViT recipes) uses ``betas`` and decoupled ``weight_decay``; ``momentum``,
    ``nesterov`` and ``lars_eta`` are then unused.
    """

    name: str = "sgd"
    lr: float = 0.03
    base_batch: int = 256
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    lars_eta: float = 0.001
    exclude_bias_bn: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    unit: str = "step"

    @classmethod
    def from_recipe(cls, recipe: dict[str, Any]) -> "OptimConfig":
        opt = recipe_section(recipe, "optimizer", {"name", "lr", "base_batch", "momentum", "weight_decay",
                                                   "nesterov", "lars_eta", "exclude_bias_bn", "betas"})
        if "betas" in opt:
            opt["betas"] = tuple(float(b) for b in opt["betas"])
        sch = recipe_section(recipe, "schedule", {"name", "warmup_epochs", "min_lr", "unit"})
        if "name" in sch:
            sch["schedule"] = sch.pop("name")
        cfg = cls(**opt, **sch)
        if cfg.name not in ("sgd", "lars", "adamw"):
            raise ConfigError(f"optimizer.name must be 'sgd', 'lars' or 'adamw', got {cfg.name!r}")
        if cfg.schedule not in ("cosine", "constant"):
            raise ConfigError(f"schedule.name must be 'cosine' or 'constant', got {cfg.schedule!r}")
        if cfg.unit not in ("step", "epoch"):
            raise ConfigError(f"schedule.unit must be 'step' or 'epoch', got {cfg.unit!r}")
        return cfg


def lr_at(cfg: OptimConfig, step: int, steps_per_epoch: int, epochs: int, batch_size: int) -> float:
    """Learning rate of optimisation step ``step`` (0-based)."""
    peak = cfg.lr * batch_size / cfg.base_batch
    if cfg.unit == "step":
        t, t_next = step / steps_per_epoch, (step + 1) / steps_per_epoch
    else:
        t = float(step // steps_per_epoch)
        t_next = t + 1.0
    if t < cfg.warmup_epochs:
        return peak * min(1.0, t_next / cfg.warmup_epochs)
    if cfg.schedule == "constant":
        return peak
    span = max(epochs - cfg.warmup_epochs, 1e-12)
    frac = min(1.0, (t - cfg.warmup_epochs) / span)
    return cfg.min_lr + (peak - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise trust ratio ``eta * ||w|| / ||g + wd*w||``.

    Groups with ``lars_exclude=True`` get plain SGD (the usual treatment of biases and BN).
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.001) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta,
                                      lars_exclude=False))

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # noqa: D102 - torch.optim.Optimizer API
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad.clone()
                if not group["lars_exclude"]:
                    w_norm, d_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(d)
                    trust = torch.where((w_norm > 0) & (d_norm > 0), group["eta"] * w_norm / d_norm,
                                        torch.ones_like(w_norm))
                    d.mul_(trust)
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = d
                else:
                    buf.mul_(group["momentum"]).add_(d)
                p.add_(buf, alpha=-group["lr"])
        return loss


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict[str, Any]]:
    """Trainable parameters in groups; ``model.param_groups()`` takes precedence if defined.

    Each group may carry ``lr_mult`` (scales the scheduled lr). Parameters with
    ``requires_grad=False`` (momentum/EMA targets) are never optimised.
    """
    custom = getattr(model, "param_groups", None)
    if callable(custom):
        groups = [dict(g) for g in custom()]
        for g in groups:
            g["params"] = [p for p in g["params"] if p.requires_grad]
        return [g for g in groups if g["params"]]
    params = [p for p in model.parameters() if p.requires_grad]
    if not cfg.exclude_bias_bn:
        return [{"params": params}]
    return [g for g in ({"params": [p for p in params if p.ndim > 1]},
                        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "lars_exclude": True})
            if g["params"]]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if not any(g["params"] for g in groups):
        raise ConfigError("the model has no trainable parameters")
    if cfg.name == "lars":
        return LARS(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, eta=cfg.lars_eta)
    for g in groups:
        g.pop("lars_exclude", None)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           nesterov=cfg.nesterov)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_mult", 1.0)
