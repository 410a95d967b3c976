from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Small tensors: one thread avoids oversubscribing a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="package")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic benchmark (size "tiny", seed 0), generated once for these tests."""
    from harness.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("synthetic"), seed=0, size="tiny")
