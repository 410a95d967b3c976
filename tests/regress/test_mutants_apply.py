"""The mutants of scripts/mutation-score stay usable: each says what bug it is, names test
paths that exist, and still applies to the code (a mutant that no longer applies measures
nothing). Whether the tests catch them is what `scripts/mutation-score` measures."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MUTANTS = sorted((ROOT / "tests" / "mutants").glob("*.patch"))


def test_there_are_mutants_of_every_area() -> None:
    areas = {p.name.split("-")[0] for p in MUTANTS}
    assert len(MUTANTS) >= 30
    assert {"mocov2", "byol", "mocov3", "densecl", "contracam", "cam", "orl", "d3ssl", "engine", "task",
            "stats"} <= areas


@pytest.mark.parametrize("patch", MUTANTS, ids=lambda p: p.stem)
def test_mutant_is_described_and_applies(patch: Path) -> None:
    header = [line for line in patch.read_text().splitlines() if line.startswith("# ")]
    fields = dict(line[2:].split(":", 1) for line in header if ":" in line)
    assert fields.get("what", "").strip(), f"{patch}: no '# what:' line"
    for test in fields.get("tests", "").split():
        assert (ROOT / test.split("::")[0]).exists(), f"{patch}: names {test}, which does not exist"
    res = subprocess.run(["git", "apply", "--check", str(patch)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
