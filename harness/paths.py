"""Locations the harness uses: the benchmarks folder, caches, default output."""
from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


def benchmarks_dir() -> Path:
    """The declarative protocol folder (suites, presets, task catalog, configs)."""
    return Path(os.environ.get("HARNESS_BENCHMARKS", _REPO / "benchmarks"))


def results_dir() -> Path:
    return _REPO / "results"


def cache_dir() -> Path:
    """Caches shared by runs: the synthetic benchmark, feature caches."""
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "objaware-harness"))
