"""Locations the harness uses: the benchmarks folder, caches, default output."""
from __future__ import annotations

import os
from pathlib import Path

BACKBONE_FILE = "backbone.pth"  # what the last stage of every method exports
BACKBONE_META = "backbone.json"  # its sidecar: arch, sha256, method, recipe, config hash

_PACKAGE = Path(__file__).resolve().parents[1]  # the harness package
_REPO = _PACKAGE.parent  # the source tree, when the package runs from one


def _source_tree() -> bool:
    return (_REPO / "benchmarks" / "suites").is_dir() and (_REPO / "pyproject.toml").is_file()


def benchmarks_dir() -> Path:
    """The declarative protocol folder (suites, presets, task catalog, configs):
    ``$HARNESS_BENCHMARKS``, else the source tree's ``benchmarks/``, else the copy an
    installed wheel carries."""
    if "HARNESS_BENCHMARKS" in os.environ:
        return Path(os.environ["HARNESS_BENCHMARKS"])
    return _REPO / "benchmarks" if _source_tree() else _PACKAGE / "_benchmarks"


def protocol_file(relative: str) -> Path:
    """A protocol file named as in the source tree (``benchmarks/mmdet/x.py``)."""
    head, _, rest = str(relative).partition("/")
    return benchmarks_dir() / rest if head == "benchmarks" and rest else _REPO / relative


def results_dir() -> Path:
    """The curated records and leaderboard files: the source tree's ``results/``, else
    ``./results`` (an installed package writes its tables where it runs)."""
    return _REPO / "results" if _source_tree() else Path.cwd() / "results"


def reference_dir() -> Path:
    """The published reference numbers (``results/reference``, or the installed copy)."""
    return _REPO / "results" / "reference" if _source_tree() else _PACKAGE / "_reference"


def cache_dir() -> Path:
    """Caches shared by runs: the synthetic benchmark, feature caches."""
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "objaware-harness"))
