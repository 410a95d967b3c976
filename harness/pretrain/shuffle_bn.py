"""Shuffle BN (MoCo's batch shuffle): the key encoder sees its batch in a random order,
split over BatchNorm groups, so that a query and its positive key never share batch
statistics (which would let the contrastive task be solved through BN).

Under DDP the groups are the ranks: the keys' inputs are gathered, permuted with the
step's shared generator (the same permutation on every rank), each rank encodes its
share with its own BN, and the outputs are gathered and put back in order, as MoCo's
``_batch_shuffle_ddp``. In one process the same is emulated: the permuted batch is
encoded in ``groups`` equal sub-batches, each with its own BN statistics.
"""
from __future__ import annotations

from typing import Callable

import torch

from harness.core.errors import ConfigError
from harness.pretrain import dist

Outputs = torch.Tensor | tuple[torch.Tensor, ...]


def shuffled_forward(encoder: Callable[[torch.Tensor], Outputs], x: torch.Tensor, groups: int,
                     generator: torch.Generator | None) -> Outputs:
    """``encoder(x)`` (a tensor or a tuple of batch-first tensors) computed under Shuffle BN,
    returned in the order of ``x``. ``groups`` (one process only): BN groups; <= 1 is a
    plain forward. ``generator``: the step's, shared by the ranks (:func:`step_generator`).
    Run it without gradients (it is meant for momentum key encoders)."""
    if generator is None:
        raise ValueError("shuffle BN needs the step's shared generator (batch['rng'] of the pretraining loop)")
    if dist.is_distributed():
        return _across_ranks(encoder, x, generator)
    if groups <= 1:
        return encoder(x)
    if x.shape[0] % groups:
        raise ConfigError(f"shuffle BN: a batch of {x.shape[0]} does not split into {groups} equal BN groups")
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    parts = [encoder(chunk) for chunk in x[perm].chunk(groups)]
    inverse = torch.argsort(perm)
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(outs)[inverse] for outs in zip(*parts))
    return torch.cat(parts)[inverse]


def step_generator(batch: dict) -> torch.Generator | None:
    """The shared generator of the loop's step (``batch["rng"]``), None outside the loop."""
    rng = batch.get("rng")
    return rng.generator if rng is not None else None


def _across_ranks(encoder: Callable[[torch.Tensor], Outputs], x: torch.Tensor,
                  generator: torch.Generator) -> Outputs:
    rank, n = torch.distributed.get_rank(), x.shape[0]
    full = dist.all_gather_cat(x)
    perm = torch.randperm(full.shape[0], generator=generator).to(x.device)
    out = encoder(full[perm[rank * n:(rank + 1) * n]])
    mine = torch.argsort(perm)[rank * n:(rank + 1) * n]  # where this rank's own rows sit in the shuffled batch

    def back(t: torch.Tensor) -> torch.Tensor:
        return dist.all_gather_cat(t.contiguous())[mine]

    return tuple(back(t) for t in out) if isinstance(out, tuple) else back(out)
