"""Process-group set-up from torchrun's environment, and the collectives methods need.

Under ``torchrun`` (``WORLD_SIZE > 1``) :func:`init_from_env` initialises
``torch.distributed`` (NCCL on CUDA, gloo on CPU) from ``MASTER_ADDR``/``MASTER_PORT``/
``RANK``/``WORLD_SIZE``. In one process every function here is the identity.

The collective timeout is :func:`harness.core.distributed.timeout`, not torch's
10-minute NCCL default.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist

from harness.core.distributed import timeout


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def info_from_env() -> DistInfo:
    """This process's rank, world size and local rank, as the launcher's environment sets them."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def init_from_env(device: str) -> DistInfo:
    """Initialise the default process group if the environment asks for more than one rank."""
    info = info_from_env()
    if info.distributed and not tdist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        tdist.init_process_group(backend=backend, init_method="env://", timeout=timeout())
    return info


def device_for(info: DistInfo, device: str) -> torch.device:
    """This rank's device: ``cuda:<local_rank>`` on GPU nodes, else CPU."""
    return torch.device(f"cuda:{info.local_rank}") if device.startswith("cuda") else torch.device("cpu")


def is_distributed() -> bool:
    return tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1


def all_gather_cat(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dim 0, in rank order (no gradient)."""
    if not is_distributed():
        return x.detach()
    parts = [torch.empty_like(x) for _ in range(tdist.get_world_size())]
    tdist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts, 0)


def gather_objects(obj: object) -> list[object]:
    """Any picklable ``obj`` of every rank, in rank order (``[obj]`` in one process)."""
    if not is_distributed():
        return [obj]
    out: list[object] = [None] * tdist.get_world_size()
    tdist.all_gather_object(out, obj)
    return out


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ranks (a new tensor; no gradient)."""
    if not is_distributed():
        return x.detach().clone()
    y = x.detach().clone()
    tdist.all_reduce(y)
    return y / tdist.get_world_size()


def barrier() -> None:
    if is_distributed():
        tdist.barrier()


def close() -> None:
    """Wait for every rank, then tear the process group down (nothing to do in one process).

    A rank that exits while its peer's gloo threads still hold the connection can abort
    that peer at exit (``terminate called without an active exception``).
    """
    if tdist.is_available() and tdist.is_initialized():
        tdist.barrier()
        tdist.destroy_process_group()


def broadcast_int(value: int, src: int = 0) -> int:
    """Rank ``src``'s ``value`` on every rank."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.long)
    if tdist.get_backend() == "nccl":
        t = t.cuda()
    tdist.broadcast(t, src)
    return int(t.item())
