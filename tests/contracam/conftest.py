from __future__ import annotations

from pathlib import Path

import pytest

from harness.data.synthetic import ensure


@pytest.fixture(scope="session")
def contracam_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic benchmark (seed 0), generated once per test session."""
    return ensure(tmp_path_factory.getbasetemp() / "contracam-synth", seed=0, size="tiny")
