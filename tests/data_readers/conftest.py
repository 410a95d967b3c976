"""Data roots for the reader tests: one clean tiny root per test run, a fresh copy per test that
breaks it, and the synthetic benchmark generated once."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reader_fixtures import make_root


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every dataset in its official format, tiny; tests must not modify it."""
    return make_root(tmp_path_factory.mktemp("official") / "data")


@pytest.fixture
def broken_root(data_root: Path, tmp_path: Path) -> Path:
    """A private copy of ``data_root`` that a test may damage."""
    return Path(shutil.copytree(data_root, tmp_path / "data"))


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic benchmark (size "tiny", seed 0), generated once per test run."""
    from harness.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("synthetic") / "data", seed=0, size="tiny")
