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


def test_a_failed_unit_prints_its_error_line_and_log(bench: Path, tmp_path: Path) -> None:
    res = cli(bench, "run", "--method", "toy", "--suite", "toy", "--set", "method.fail_stage=a",
              "--out", str(tmp_path / "o"))
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    failed = lines.index(next(ln for ln in lines if ln.startswith("[1/4] stage a: failed")))
    assert "RuntimeError: stage a failed on purpose" in lines[failed + 1]
    assert lines[failed + 2].strip().startswith("log: ") and lines[failed + 2].strip().endswith("log.txt")
    assert "FAILED stage a: RuntimeError: stage a failed on purpose" in res.stdout
    assert "not run: task toy_score (an upstream unit failed)" in res.stdout
    assert "next: no task record was written" in res.stdout and "harness tables" not in res.stdout


def test_help_lists_commands(bench: Path) -> None:
    res = cli(bench, "--help")
    assert res.returncode == 0
    for word in ("run", "list", "data", "convert"):
        assert word in res.stdout


@pytest.mark.parametrize("text, message", [
    ("0,x", "'x' is not a seed"), ("3-1", "'3-1' is not a seed"), ("0,,1", "'' is not a seed"),
    ("1,1", "listed twice"), ("0-2,2", "listed twice"), ("-1", "'-1' is not a seed"),
])
def test_malformed_seeds_exit_2_and_write_nothing(bench: Path, tmp_path: Path, text: str, message: str) -> None:
    out = tmp_path / "out"
    res = cli(bench, "run", "--method", "toy", "--suite", "toy", "--seeds", text, "--out", str(out))
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--seeds" in lines[0] and message in lines[0], res.stderr
    assert not out.exists()


def test_seeds_and_seed_are_exclusive(bench: Path, tmp_path: Path) -> None:
    res = cli(bench, "run", "--method", "toy", "--suite", "toy", "--seed", "1", "--seeds", "0,1",
              "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "not allowed with" in res.stderr


def test_seeds_plan_run_and_resume(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    dry = cli(bench, "run", "--method", "toy", "--suite", "toy", "--seeds", "0-2", "--dry-run", "--out", str(out))
    assert dry.returncode == 0, dry.stderr
    assert [ln.split(":")[0] for ln in dry.stdout.splitlines() if ln.startswith("seed ")] == ["seed 0", "seed 1",
                                                                                            "seed 2"]
    keys = [ln.split("key ")[1].split()[0] for ln in dry.stdout.splitlines() if "key " in ln]
    assert len(keys) == 12 and len(set(keys)) == 12  # every seed has its own units
    res = cli(bench, "run", "--method", "toy", "--suite", "toy", "--seeds", "0,2", "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "seeds 0,2, 8 units" in res.stdout
    assert "toy:tiny over seeds 0,2:" in res.stdout and "95 % CI over seeds" in res.stdout
    assert f"harness tables --records {out} --out {out / 'tables'}" in res.stdout and "harness claims" in res.stdout
    tables = cli(bench, "tables", "--records", str(out))  # the run's output folder, read directly
    assert tables.returncode == 0 and "toy:tiny" in tables.stdout, tables.stderr
    recs = sorted(p.relative_to(out / "records").as_posix() for p in (out / "records").rglob("*.json"))
    assert "toy/tiny/seed0/toy_score.json" in recs and "toy/tiny/seed2/toy_score.json" in recs
    assert not any("seed1" in r for r in recs)
    again = cli(bench, "run", "--method", "toy", "--suite", "toy", "--seeds", "0-2", "--out", str(out))
    assert again.returncode == 0, again.stdout + again.stderr
    skipped = [ln for ln in again.stdout.splitlines() if ": skipped" in ln]
    assert len(skipped) == 8 and sum(": ok" in ln for ln in again.stdout.splitlines()) == 4
    assert _seed_counts(again.stdout) == {3}
    part = cli(bench, "run", "--method", "toy", "--suite", "toy", "--seeds", "1,2", "--out", str(out))
    assert _seed_counts(part.stdout) == {2}  # this run's seeds, not all the folder holds


def _seed_counts(stdout: str) -> set[int]:
    """The n column of the table of metrics over seeds that ``harness run --seeds`` prints."""
    block = stdout.split("95 % CI over seeds")[1].split("\n\n")[0]
    return {int(line.split()[-1]) for line in block.strip().splitlines()[1:] if line.strip()}


def test_version_dry_run_config_and_data_exit_code(bench: Path, tmp_path: Path) -> None:
    res = cli(bench, "--version")
    assert res.returncode == 0 and res.stdout.startswith("harness ")
    res = cli(bench, "run", "--method", "toy", "--suite", "toy", "--dry-run", "--out", str(tmp_path / "o"))
    assert res.returncode == 0 and "# resolved configuration (seed 0):" in res.stdout
    assert "\nmethod:" in res.stdout and "name: toy" in res.stdout and "key " in res.stdout
    missing = tmp_path / "nothing.pth"
    res = cli(bench, "convert", str(missing), str(tmp_path / "converted"))
    assert res.returncode == 3, res.stderr  # a file problem, not a usage error
    assert str(missing) in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "converted").exists()
