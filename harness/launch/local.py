"""Start one unit as a child process (plain, or as a torchrun DDP job on this node)."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: receive SIGKILL when the harness process dies (Linux prctl)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def unit_command(spec_path: Path, nproc_per_node: int = 1, launcher: str = "local") -> list[str]:
    """The command line that runs one unit."""
    if launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={nproc_per_node}", "-m", "harness.unit", str(spec_path)]
    return [sys.executable, "-m", "harness.unit", str(spec_path)]


def start(cmd: list[str], log_path: Path, keep_fds: tuple[int, ...] = ()) -> subprocess.Popen:
    """Start ``cmd`` with stdout/stderr appended to ``log_path``; ``keep_fds`` (the unit's
    lock) stay open in the child, so the lock is held exactly as long as the unit runs."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, pass_fds=keep_fds, preexec_fn=_die_with_parent)
    finally:
        log.close()
