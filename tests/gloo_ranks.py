"""Run a function on two gloo ranks in spawned processes and collect what each returns.

Each rank starts the process group the way a unit does under torchrun (from ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) and, after its function returned, leaves it
through :func:`harness.pretrain.dist.close`. A rank that fails reports at once, so that the
parent kills its peers instead of waiting for a collective that never comes.
"""
from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Callable
from typing import Any

import pytest
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(fn: Callable[..., Any], rank: int, world: int, port: int, args: tuple, out: Any) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    from harness.pretrain import dist

    try:
        dist.init_from_env("cpu")
        result = fn(rank, *args)
    except BaseException:
        out.put((rank, False, f"rank {rank} failed:\n{traceback.format_exc()}"))
        raise
    out.put((rank, True, result))
    dist.close()


def run_ranks(fn: Callable[..., Any], *args: Any, world: int = 2, timeout: float = 120) -> list[Any]:
    """``fn(rank, *args)`` on ``world`` gloo ranks; what each returned, in rank order.

    ``fn`` must be importable (module level) and return plain data (lists, numbers, numpy
    arrays), not tensors, which would be shared with a process that may have ended.
    Fails the test if a rank raised or did not exit with code 0.
    """
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(fn, r, world, port, args, out)) for r in range(world)]
    for p in procs:
        p.start()
    got: dict[int, Any] = {}
    try:
        for _ in procs:
            rank, ok, result = out.get(timeout=timeout)
            if not ok:
                pytest.fail(result)
            got[rank] = result
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * world
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    return [got[r] for r in range(world)]
