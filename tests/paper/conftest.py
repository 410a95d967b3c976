"""Official-format data for the paper-path tests: the synthetic benchmark at size "tiny"
(written once), and a private copy a test may break."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic benchmark (size tiny, seed 0) in the official layouts; never modified."""
    from harness.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("paper-data") / "data", seed=0, size="tiny")


@pytest.fixture
def broken_root(tiny_root: Path, tmp_path: Path) -> Path:
    """A private copy of ``tiny_root`` that a test may damage."""
    return Path(shutil.copytree(tiny_root, tmp_path / "data"))


def harness(*args: str) -> subprocess.CompletedProcess:
    """``harness ARGS`` in this process (the exit code, stdout and stderr a user sees)."""
    import contextlib
    import io

    from harness.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def harness_process(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    """``harness ARGS`` in a subprocess (for runs that start unit processes)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)
