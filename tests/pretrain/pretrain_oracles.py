"""Plain reference computations for the pretraining-method semantics tests.

Everything here is written independently of :mod:`harness.pretrain` (plain loops and
float64 arithmetic), so the tests can compare the real code against it.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F


def params(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every named parameter of ``module``."""
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every named buffer of ``module``."""
    return {n: b.detach().clone() for n, b in module.named_buffers()}


@torch.no_grad()
def perturb_(module: nn.Module, seed: int, scale: float = 0.05) -> None:
    """Add small seeded noise to every parameter (so a copy no longer equals its source)."""
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def ema(target: dict[str, torch.Tensor], online: dict[str, torch.Tensor], m: float) -> dict[str, torch.Tensor]:
    """``m * target + (1 - m) * online``, parameter by parameter."""
    assert target.keys() == online.keys()
    return {n: m * target[n] + (1 - m) * online[n] for n in target}


def assert_params_equal(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], atol: float = 1e-6,
                        what: str = "") -> None:
    """Every named tensor of ``got`` equals ``want`` (same names) within ``atol``."""
    assert got.keys() == want.keys(), what
    bad = [n for n in got if got[n].shape != want[n].shape
           or (got[n].numel() and float((got[n].float() - want[n].float()).abs().max()) > atol)]
    assert not bad, f"{what}: differ in {bad[:8]} ({len(bad)} of {len(got)})"


def contrastive_ce(logits: torch.Tensor, labels: list[int]) -> float:
    """Mean cross-entropy of ``logits`` rows against integer ``labels``, in float64 loops."""
    rows = logits.double().tolist()
    total = 0.0
    for row, y in zip(rows, labels):
        top = max(row)
        lse = top + torch.tensor([v - top for v in row], dtype=torch.float64).exp().sum().log().item()
        total += lse - row[y]
    return total / len(rows)


def info_nce_ref(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> tuple[float, float]:
    """InfoNCE (positive first, then the queue's columns) and top-1 accuracy in %."""
    q, k, queue = q.double(), k.double(), queue.double()
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue], 1) / temperature
    acc = sum(int(row.argmax()) == 0 for row in logits) / len(logits) * 100
    return contrastive_ce(logits, [0] * len(logits)), acc


def fifo_push(keys: torch.Tensor, ptr: int, new: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Write the rows of ``new`` one by one into the columns of ``keys`` from ``ptr`` on,
    wrapping around; returns the new columns and pointer."""
    keys = keys.clone()
    size = keys.shape[1]
    for row in new:
        keys[:, ptr] = row
        ptr = (ptr + 1) % size
    return keys, ptr


def copy_modules(*modules: nn.Module) -> list[nn.Module]:
    """Deep copies (to run the same computation again without touching the originals)."""
    return [copy.deepcopy(m) for m in modules]


class TinyTrunk(nn.Module):
    """A cheap stand-in for a ResNet trunk: conv -> BN -> ReLU -> pool -> linear to ``out``."""

    def __init__(self, out: int = 512, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, 3, stride=2, bias=False)
        self.bn = nn.BatchNorm1d(8)
        self.fc = nn.Linear(8, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x).mean(dim=(2, 3)))))


def use_tiny_trunk(model: nn.Module, target: str, out: int = 512) -> nn.Module:
    """Replace ``model.backbone`` by a :class:`TinyTrunk` and ``model.<target>`` by a frozen
    copy of it (parameters without gradient), as the methods build their momentum trunks."""
    model.backbone = TinyTrunk(out)
    twin = copy.deepcopy(model.backbone)
    for p in twin.parameters():
        p.requires_grad_(False)
    setattr(model, target, twin)
    return model


def two_views(n: int = 4, seed: int = 1) -> dict[str, torch.Tensor]:
    """A batch of two random 16 x 16 views of ``n`` images."""
    g = torch.Generator().manual_seed(seed)
    return {"view1": torch.randn(n, 3, 16, 16, generator=g), "view2": torch.randn(n, 3, 16, 16, generator=g)}


def unit_rows(n: int, d: int, g: torch.Generator) -> torch.Tensor:
    """``n`` random L2-normalised rows of dimension ``d``."""
    return F.normalize(torch.randn(n, d, generator=g), dim=1)


def assert_frozen_copy(online: nn.Module, key: nn.Module) -> None:
    """``key`` holds ``online``'s parameters and buffers in its own storage, frozen."""
    assert_params_equal(params(key), params(online), atol=0)
    assert_params_equal(buffers(key), buffers(online), atol=0)
    assert all(p.requires_grad for p in online.parameters())
    assert not any(p.requires_grad for p in key.parameters())
    assert not any(a.data_ptr() == b.data_ptr() for a, b in zip(key.parameters(), online.parameters()))


Snapshots = dict[str, dict[str, torch.Tensor]]  # {"b": trunk parameters, "p": projector parameters}


def sgd_step(model: nn.Module, target: str) -> tuple[Snapshots, Snapshots]:
    """One SGD step (lr 0.5) of a two-view model on :func:`two_views`, before its momentum
    update: the target trunk and projector (attributes ``backbone<target>``,
    ``projector<target>``) before the step, and the online ones after it."""
    before = {"b": params(getattr(model, f"backbone{target}")), "p": params(getattr(model, f"projector{target}"))}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(two_views())["loss"].backward()
    opt.step()
    return before, {"b": params(model.backbone), "p": params(model.projector)}
