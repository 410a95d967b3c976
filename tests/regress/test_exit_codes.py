"""One exit-code contract for every command: 2 for a bad command, name, option or
configuration; 3 for missing or malformed data, checkpoints or records."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]


def harness(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue()


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


@pytest.fixture
def malformed(tmp_path: Path) -> Path:
    folder = tmp_path / "bad-records" / "mocov2" / "tiny" / "seed0"
    folder.mkdir(parents=True)
    (folder / "knn.json").write_text('{"kind": "task", "method": "mocov2"')
    return tmp_path / "bad-records"


CASES = {
    "run: unknown method": (2, ["run", "--method", "mocov9", "--suite", "smoke", "--dry-run"]),
    "run: bad seed": (2, ["run", "--method", "mocov2", "--suite", "smoke", "--seeds", "-1", "--dry-run"]),
    "run: missing data root": (3, ["run", "--method", "mocov2", "--suite", "smoke", "--data-root", "{tmp}/nowhere",
                                   "--dry-run", "--out", "{tmp}/out"]),
    "data verify: unknown suite": (2, ["data", "verify", "--data-root", "{empty}", "--suite", "nope"]),
    "data verify: empty root": (3, ["data", "verify", "--data-root", "{empty}", "--dataset", "coco"]),
    "convert: missing checkpoint": (3, ["convert", "{tmp}/none.pth", "{tmp}/out.pth"]),
    "convert: unknown arch": (2, ["convert", "{tmp}/none.pth", "{tmp}/out.pth", "--arch", "resnet99"]),
    "run: no processes per node": (2, ["run", "--method", "mocov2", "--suite", "smoke", "--launcher", "torchrun",
                                       "--nproc-per-node", "0", "--dry-run"]),
    "tables: no records": (3, ["tables", "--records", "{empty}", "--out", "{tmp}/tables"]),
    "tables: missing folder": (3, ["tables", "--records", "{tmp}/nowhere"]),
    "tables: malformed record": (3, ["tables", "--records", "{malformed}"]),
    "tables: unknown format": (2, ["tables", "--format", "pdf"]),
    "compare: malformed record": (3, ["compare", "mocov2", "random", "--records", "{malformed}"]),
    "compare: unknown row": (2, ["compare", "mocov9", "random:tiny", "--records", str(ROOT / "results" / "records")]),
    "claims: missing folder": (3, ["claims", "--records", "{tmp}/nowhere"]),
    "claims: missing claims file": (2, ["claims", "--file", "{tmp}/none.yaml"]),
    "check: missing baseline": (2, ["check", "--baseline", "{tmp}/none.yaml", "--records", "{empty}"]),
    "check: records without the method": (3, ["check", "--baseline", str(ROOT / "results" / "baselines" /
                                                                      "mocov2-tiny.yaml"), "--records", "{empty}"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_exit_code(case: str, tmp_path: Path, empty: Path, malformed: Path) -> None:
    code, args = CASES[case]
    args = [a.format(tmp=tmp_path, empty=empty, malformed=malformed) for a in args]
    got, err = harness(*args)
    assert got == code, f"{case}: exit {got}, expected {code}\n{err}"
    assert "Traceback" not in err
    if "tables" in case:
        assert not (tmp_path / "tables").exists()  # nothing written
    assert not (tmp_path / "out.pth").exists() and not (tmp_path / "out").exists()
