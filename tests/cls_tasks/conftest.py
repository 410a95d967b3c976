from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here works on small tensors: one torch thread (tests/torch_threads.py)."""


@pytest.fixture(scope="package")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic benchmark (size "tiny", seed 0), generated once for these tests."""
    from harness.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("synthetic"), seed=0, size="tiny")
