"""How a unit's process is started: locally, under torchrun, or on SLURM.

The runner builds one :class:`LaunchRequest` per unit and hands it to a
:class:`Launcher`; launchers know nothing of the runner (the record is written through
the request's ``finalize`` callable when a launcher does not wait for its jobs).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from harness.run.launch.base import Launcher, LaunchRequest

if TYPE_CHECKING:
    from harness.run.launch.slurm import SlurmResources

__all__ = ["Launcher", "LaunchRequest", "LAUNCHERS", "make_launcher"]

LAUNCHERS = ("local", "torchrun", "slurm")


def make_launcher(name: str, *, nproc_per_node: int = 1, slurm_resources: SlurmResources | None = None,
                  slurm_cluster: str | None = None, report: Callable[[str], None] = print) -> Launcher:
    """The launcher called ``name`` (one of :data:`LAUNCHERS`)."""
    if name in ("local", "torchrun"):
        from harness.run.launch.local import LocalLauncher

        return LocalLauncher(torchrun=name == "torchrun", nproc_per_node=nproc_per_node)
    if name == "slurm":
        from harness.run.launch.slurm import SlurmLauncher, SlurmResources

        return SlurmLauncher(slurm_resources or SlurmResources(), cluster=slurm_cluster, report=report)
    raise ValueError(f"unknown launcher {name!r} (expected one of {LAUNCHERS})")
