"""Build step beyond pyproject.toml: a wheel (non-editable install) carries the protocol
folder ``benchmarks/`` and the published reference numbers ``results/reference/`` inside
the package, as ``harness/_benchmarks`` and ``harness/_reference``
(:mod:`harness.core.paths` finds them there when there is no source tree)."""
from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = {"benchmarks": "harness/_benchmarks", "results/reference": "harness/_reference"}


class BuildWithProtocol(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for src, dst in SHIPPED.items():
            target = Path(self.build_lib) / dst
            shutil.rmtree(target, ignore_errors=True)
            # benchmarks/perf holds the project's speed scripts, not protocol: not shipped
            shutil.copytree(ROOT / src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "perf"))


setup(cmdclass={"build_py": BuildWithProtocol})
