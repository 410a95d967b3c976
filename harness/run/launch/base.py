"""The launcher protocol: what the runner asks of a way to start units."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol


@dataclass(frozen=True)
class LaunchRequest:
    """One unit to start: its spec file (written before :meth:`Launcher.launch`), its
    workdir (the log goes there), the keys of the units it waits for, and ``finalize``,
    which turns the unit's result into its record (a picklable callable)."""

    kind: str  # "stage" or "task"
    name: str
    key: str
    label: str  # shown in progress lines, e.g. "[2/9] task knn"
    spec_path: Path
    workdir: Path
    upstream: tuple[tuple[str, str], ...] = ()  # (name, key) of each unit this one consumes
    finalize: Callable[[], dict[str, Any]] | None = field(default=None, compare=False)


class Launcher(Protocol):
    """Starts units. ``waits`` says whether :meth:`launch` returns only after the unit's
    process ended (then the runner writes the record) or right after submitting it (then
    the job calls ``request.finalize`` itself)."""

    name: str
    waits: bool

    def describe(self, request: LaunchRequest) -> str:
        """Where and how the unit would run (for ``--dry-run``)."""
        ...

    def launch(self, request: LaunchRequest, keep_fds: tuple[int, ...] = ()) -> None:
        """Run (or submit) the unit; ``keep_fds`` stay open in a local child process."""
        ...
