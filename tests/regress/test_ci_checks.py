"""The project's standing checks: committed leaderboards are fresh against their records,
and the smoke suite still produces its expected numbers on the synthetic benchmark."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=1200)


def test_committed_tables_are_fresh() -> None:
    res = harness("tables", "--check")
    assert res.returncode == 0, res.stdout + res.stderr


def test_smoke_suite_matches_expected(tmp_path: Path) -> None:
    res = harness("check", "--suite", "smoke", "--expected", "results/baselines/smoke.yaml", "--out", str(tmp_path))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "6 passed, 0 failed" in res.stdout
