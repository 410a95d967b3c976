"""A pytest plugin of the whole suite (loaded with ``-p torch_threads``): the fixture
``one_torch_thread`` runs a test on one torch thread, then restores the count. Tests on
small tensors use it so that they do not oversubscribe a shared CPU."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
