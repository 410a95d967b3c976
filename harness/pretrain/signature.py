"""The instance-discrimination signature of a pretraining stage, measured on its own images.

Every contrastive or self-distillation method claims that two augmented views of one image
land closer together than views of two different images. This module measures that claim
on a fixed probe: the first ``n`` images of the stage's dataset, two views each drawn with
the recipe's own augmentation from a fixed seed, embedded by a copy of the backbone whose
batch-norm statistics are re-estimated on the probe (pooled features, eval mode, no
gradient; the trained model and the global random streams are untouched):

- ``signature_retrieval``: % of second views whose nearest first view (cosine) is the
  view of the same image (chance: 100 / n);
- ``signature_alignment``: mean cosine of the matched pairs minus the mean cosine of the
  unmatched pairs.

Each is measured before the first step (``*_init``, kept in ``signature.json``) and after
the last. Re-estimating the statistics makes ``*_init`` the "random + BN statistics"
floor: running statistics drifting towards the data raise the alignment of an untrained
network almost as much as a few dozen steps of training do. A stage whose trained
alignment is not above its ``*_init`` value did not learn what its method claims;
``harness check`` fails it (:func:`harness.results.regress.signature_checks`).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from harness.api import StageContext
from harness.core.atomic import atomic_write_json
from harness.pretrain import dist
from harness.pretrain.augment import StepRNG, TwoViewBatch
from harness.pretrain.data import collate

SIGNATURE_FILE = "signature.json"
PROBE_IMAGES = 64
PROBE_SEED = 0x516  # the probe's views do not depend on the run's seed


def probe_views(data: Dataset, views: TwoViewBatch, n: int = PROBE_IMAGES) -> tuple[torch.Tensor, torch.Tensor]:
    """Two augmented views ``(n, 3, S, S)`` of the first ``n`` images of ``data``."""
    raw = collate([data[i] for i in range(min(n, len(data)))])
    batch = views(raw, StepRNG(PROBE_SEED, 0))
    return batch["view1"], batch["view2"]


def _embed(backbone: nn.Module, images: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    device = next(backbone.parameters()).device
    out = []
    for part in images.split(chunk):
        f = backbone(part.to(device))
        f = f.mean(dim=(2, 3)) if f.ndim == 4 else f.flatten(1)
        out.append(F.normalize(f.float(), dim=1).cpu())
    return torch.cat(out)


def _plain_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every :class:`~torch.nn.SyncBatchNorm` replaced by a local one (a
    probe on one rank must not wait for the others)."""
    if isinstance(module, nn.SyncBatchNorm):
        bn = nn.BatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats).to(module.weight.device if module.affine else "cpu")
        bn.load_state_dict(module.state_dict())
        return bn
    for name, child in module.named_children():
        module.add_module(name, _plain_batchnorm(child))
    return module


def with_probe_statistics(backbone: nn.Module, views: tuple[torch.Tensor, ...], device: torch.device | None = None,
                          chunk: int = 64) -> nn.Module:
    """An eval-mode copy of ``backbone`` (on ``device``, default: the backbone's) whose
    batch-norm running statistics are those of ``views`` (one tensor per view; sizes may
    differ), the original left as it was."""
    probe = _plain_batchnorm(copy.deepcopy(backbone))
    if device is not None:
        probe.to(device)
    norms = [m for m in probe.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if norms:
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None  # a cumulative average over the chunks
        device = next(probe.parameters()).device
        probe.train()
        with torch.no_grad():
            for part in (p for v in views for p in v.split(chunk)):
                probe(part.to(device))
    return probe.eval()


def measure(backbone: nn.Module, view1: torch.Tensor, view2: torch.Tensor,
            device: torch.device | None = None) -> dict[str, float]:
    """Retrieval (%) and alignment of the probe's views under ``backbone`` (a copy of it on
    ``device``)."""
    probe = with_probe_statistics(backbone, (view1, view2), device)
    with torch.no_grad():
        a, b = _embed(probe, view1), _embed(probe, view2)
    sim = b @ a.T  # row i: second view of image i against every first view
    n = sim.shape[0]
    matched = sim.diagonal()
    retrieval = (sim.argmax(dim=1) == torch.arange(n)).float().mean().item() * 100
    unmatched = (sim.sum() - matched.sum()) / max(1, n * n - n)
    return {"signature_retrieval": retrieval, "signature_alignment": (matched.mean() - unmatched).item()}


class Signature:
    """The probe of one stage: ``start`` before training, ``finish`` after it (rank 0 only)."""

    def __init__(self, workdir: Path, backbone: nn.Module, data: Dataset, views: TwoViewBatch,
                 enabled: bool = True, device: torch.device | None = None) -> None:
        self.path, self.backbone, self.enabled, self.device = Path(workdir) / SIGNATURE_FILE, backbone, enabled, device
        self.views = probe_views(data, views) if enabled else None

    @classmethod
    def for_stage(cls, ctx: StageContext, backbone: nn.Module, data: Dataset,
                  augment: dict[str, Any] | None) -> "Signature":
        """The probe of stage ``ctx`` with the recipe section ``augment``; measured on rank 0,
        on its training device (before training the model itself is still on the CPU)."""
        device = dist.device_for(dist.info_from_env(), ctx.device)
        return cls(ctx.workdir, backbone, data, TwoViewBatch.from_cfg(augment),
                   enabled=ctx.world.get("rank", 0) == 0, device=device)

    def start(self) -> None:
        """Measure the untrained backbone, unless an earlier attempt of this stage did (a
        resumed stage rebuilds the same initialisation before it loads its checkpoint)."""
        if self.enabled and not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, {"init": measure(self.backbone, *self.views, self.device)}, indent=1)

    def finish(self) -> dict[str, Any]:
        """The trained values and, where recorded, their ``*_init`` counterparts."""
        if not self.enabled:
            return {}
        init = json.loads(self.path.read_text()).get("init", {}) if self.path.exists() else {}
        out = measure(self.backbone, *self.views, self.device)
        out.update({f"{k}_init": v for k, v in init.items()})
        return out
