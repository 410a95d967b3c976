from __future__ import annotations

from pathlib import Path

import pytest

import toy_plugins  # noqa: F401  (registers the toy method and tasks)


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A benchmarks folder with one preset and two suites, for the toy plugins."""
    root = tmp_path / "benchmarks"
    (root / "suites").mkdir(parents=True)
    (root / "presets").mkdir()
    (root / "tasks").mkdir()
    data = tmp_path / "data"
    data.mkdir()
    (root / "presets" / "tiny.yaml").write_text(
        f"name: tiny\nrecipe: tiny\ndevice: cpu\ndata:\n  root: {data}\n")
    (root / "suites" / "toy.yaml").write_text(
        "name: toy\ntasks:\n  - toy_score\n  - {task: toy_other, as: toy_other.b, with: {offset: 2}}\n")
    (root / "suites" / "one.yaml").write_text("name: one\ntasks: [toy_score]\n")
    monkeypatch.setenv("HARNESS_BENCHMARKS", str(root))
    return root
