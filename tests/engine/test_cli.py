"""The command line: bad input gives one clear line, exit code 2, nothing written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def cli(bench: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HARNESS_BENCHMARKS=str(bench), HARNESS_PLUGINS="toy_plugins",
               PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], env=env, capture_output=True,
                          text=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["--method", "toyy"], "unknown method 'toyy'; did you mean 'toy'"),
    (["--method", "toy", "--suite", "nope"], "unknown suite 'nope'"),
    (["--method", "toy", "--set", "method.stepz=3"], "no key 'method.stepz'"),
    (["--method", "toy", "--set", "method.steps"], "expected KEY=VALUE"),
    (["--method", "toy", "--preset", "big"], "unknown preset 'big'"),
    (["--method", "toy", "--recipe", "hugee"], "unknown recipe of method 'toy'"),
])
def test_bad_input_exits_2_with_one_line(bench: Path, tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    res = cli(bench, "run", "--suite", "toy", *args, "--out", str(out)) if "--suite" not in args else \
        cli(bench, "run", *args, "--out", str(out))
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert not out.exists()


def test_malformed_suite_yaml(bench: Path, tmp_path: Path) -> None:
    (bench / "suites" / "broken.yaml").write_text("name: broken\ntasks: [a, b\n")
    res = cli(bench, "run", "--method", "toy", "--suite", "broken", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "broken.yaml: line" in res.stderr and "malformed YAML" in res.stderr
    assert not (tmp_path / "o").exists()


def test_unwritable_output(bench: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/harness-out")  # not writable even for root
    else:
        locked = tmp_path / "ro"
        locked.mkdir()
        locked.chmod(0o500)
        target = locked / "out"
    res = cli(bench, "run", "--method", "toy", "--suite", "toy", "--out", str(target))
    assert res.returncode == 2 and "not writable" in res.stderr, res.stderr


def test_list_is_fast_and_imports_no_torch(bench: Path) -> None:
    code = ("import sys, harness.cli as c\n"
            "for what in ('methods', 'tasks', 'suites', 'presets'):\n"
            "    assert c.main(['list', what]) == 0\n"
            "bad = [m for m in ('torch', 'mmdet', 'mmseg', 'mmengine', 'pandas') if m in sys.modules]\n"
            "assert not bad, bad\n")
    env = dict(os.environ, HARNESS_BENCHMARKS=str(bench), HARNESS_PLUGINS="toy_plugins",
               PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "toy" in res.stdout and "toy_score" in res.stdout and "one" in res.stdout


def test_run_prints_progress_and_summary(bench: Path, tmp_path: Path) -> None:
    res = cli(bench, "run", "--method", "toy", "--suite", "toy", "--out", str(tmp_path / "o"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "[1/4] stage a: ok" in res.stdout and "[4/4] task toy_other.b: ok" in res.stdout
    assert "score=6.00" in res.stdout and "acc=52.00" in res.stdout
    dry = cli(bench, "run", "--method", "toy", "--suite", "toy", "--dry-run", "--out", str(tmp_path / "o"))
    assert dry.returncode == 0 and "key " in dry.stdout


def test_help_lists_commands(bench: Path) -> None:
    res = cli(bench, "--help")
    assert res.returncode == 0
    for word in ("run", "list", "data", "convert"):
        assert word in res.stdout
