"""The project's standing checks: committed leaderboards and baselines are fresh against their records,
and MoCo v2's tiny run of the check suite still lands inside its derived baseline (bands
and directional checks against the untrained floors) on the synthetic benchmark."""
from __future__ import annotations

import re
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


def test_committed_baselines_are_fresh() -> None:
    res = harness("baselines", "--check")
    assert res.returncode == 0, res.stdout + res.stderr


def test_check_suite_within_its_baseline(tmp_path: Path) -> None:
    res = harness("check", "--baseline", "results/baselines/mocov2-tiny.yaml", "--suite", "check",
                  "--out", str(tmp_path))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = res.stdout.strip().splitlines()[-1]
    assert " 0 failed" in summary, res.stdout
    assert int(re.search(r"\((\d+) directional", summary).group(1)) >= 3, summary
    # the pretraining stage's own signature, checked against its untrained value
    assert re.search(r"stage\.pretrain\s+signature_alignment\s+0\s+above signature_alignment_init .* pass",
                     res.stdout), res.stdout
