"""Start one unit as a child process (plain, or as a torchrun DDP job on this node) and
wait for it, printing its progress line."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.run.launch.base import LaunchRequest
from harness.run.launch.progress import ProgressLine

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
                f"--nproc_per_node={nproc_per_node}", "-m", "harness.run.unit", str(spec_path)]
    return [sys.executable, "-m", "harness.run.unit", str(spec_path)]


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


def killed_by(signum: int) -> str:
    """A signal's name, with the usual reason for SIGKILL."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    return name + (" (the kernel's out-of-memory killer sends it when memory runs out; lower the batch size or "
                   "workers)" if signum == signal.SIGKILL else "")


class LocalLauncher:
    """A child process per unit on this machine (``torchrun``: a DDP job of
    ``nproc_per_node`` processes); :meth:`launch` returns when the unit's process ended."""

    waits = True

    def __init__(self, torchrun: bool = False, nproc_per_node: int = 1, poll_s: float = 0.5):
        self.name = "torchrun" if torchrun else "local"
        self.nproc, self.poll_s = nproc_per_node, poll_s

    def command(self, request: LaunchRequest) -> list[str]:
        return unit_command(request.spec_path, self.nproc, self.name)

    def describe(self, request: LaunchRequest) -> str:
        return " ".join(self.command(request))

    def launch(self, request: LaunchRequest, keep_fds: tuple[int, ...] = ()) -> None:
        proc = start(self.command(request), request.workdir / "log.txt", keep_fds=keep_fds)
        t0, last_line, last_print = time.monotonic(), "", 0.0
        tty = sys.stdout.isatty()
        progress_line = ProgressLine()
        while proc.poll() is None:
            time.sleep(self.poll_s)
            line = progress_line(request.workdir / "progress.json", time.monotonic() - t0)
            now = time.monotonic()
            if line and line != last_line and (tty or now - last_print > 10):
                print(f"\r{request.label}: {line}" + ("" if tty else "\n"), end="", flush=True)
                last_line, last_print = line, now
        if tty and last_line:
            print("\r" + " " * (len(request.label) + len(last_line) + 2) + "\r", end="", flush=True)
        if proc.returncode < 0:  # the log's last lines are all the record shows: say what ended it
            with open(request.workdir / "log.txt", "a") as log:
                log.write(f"\nharness: the unit process was killed by {killed_by(-proc.returncode)}\n")
