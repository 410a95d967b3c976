"""RoI-level BYOL regression loss (SoCo-style) and the weighting of D3SSL's loss terms."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def roi_byol_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``2 - 2 cos(pred, target)`` averaged over the valid RoI pairs.

    ``pred`` (student prediction) and ``target`` (teacher projection, no gradient) are
    ``(N, D)`` rows of corresponding RoIs; ``valid`` ``(N,)`` marks the rows that count.
    Returns 0 (with a gradient path) when no row is valid.
    """
    p = F.normalize(pred.float(), dim=-1)
    z = F.normalize(target.detach().float(), dim=-1)
    per_roi = 2.0 - 2.0 * (p * z).sum(-1)
    w = valid.to(per_roi.dtype)
    return (per_roi * w).sum() / w.sum().clamp(min=1.0)


def combine(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Weighted sum of named loss terms (a term without a weight counts once)."""
    total = None
    for name, value in terms.items():
        part = value * float(weights.get(name, 1.0))
        total = part if total is None else total + part
    if total is None:
        raise ValueError("no loss terms to combine")
    return total
