"""The readers read the synthetic benchmark: it writes every dataset in the same official layouts."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.data.registry import datasets
from harness.data.verify import verify_dataset


@pytest.mark.parametrize("name", [name for name, d in datasets().items() if d.splits])
def test_synthetic_dataset_reads_and_verifies(synthetic_root: Path, name: str) -> None:
    spec = datasets()[name]
    rows = verify_dataset(synthetic_root, spec, sample=4, asked=True)
    assert [r for r in rows if r.status in ("missing", "malformed")] == []
    read = [r for r in rows if r.check.startswith("read") and r.status == "ok"]
    assert read, rows
    assert all(not r.detail.startswith("0 ") for r in read), read
