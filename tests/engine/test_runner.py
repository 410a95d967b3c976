"""Running units in subprocesses: records, skipping, failure, resume after kills."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.core import config
from harness.run import runner
from harness.results import store
from harness.run.launch.local import LocalLauncher

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def run_once(tmp_path: Path, overrides: list[str] | None = None, suite: str = "toy",
             method: str = "toy") -> list[runner.Outcome]:
    cfg = config.resolve(method, suite, preset="tiny", overrides=overrides)
    units = runner.plan(cfg)
    r = runner.Runner(cfg, tmp_path / "out", launcher=LocalLauncher(poll_s=0.05), report=lambda line: None)
    return r.run(units, Path(cfg["data"]["root"]))


def executed(out: Path, stage: str) -> list[str]:
    logs = list((out / "units").glob(f"{stage}-*/executed.log"))
    return logs[0].read_text().split("\n")[:-1] if logs else []


def test_run_writes_records_and_skips_done_units(bench: Path, tmp_path: Path) -> None:
    first = run_once(tmp_path)
    assert [o.status for o in first] == ["ok"] * 4
    df = store.load_records(tmp_path / "out" / "records")
    assert sorted(df["task"]) == ["toy_other.b", "toy_score"]
    rec = df.set_index("task").loc["toy_score"]
    assert rec["metrics"] == {"score": 6.0, "err": pytest.approx(1 / 3)}
    assert rec["higher_is_better"] == {"score": True, "err": False}
    assert rec["task_version"] == "2" and rec["status"] == "ok" and rec["backbone_sha256"]
    assert rec["versions"]["python"] and rec["config_hash"] and rec["harness_git_sha"]
    stages = store.load_records(tmp_path / "out" / "records", kind="stage")
    assert sorted(stages["task"]) == ["stage.a", "stage.b"]

    second = run_once(tmp_path)
    assert [o.status for o in second] == ["skipped"] * 4
    assert executed(tmp_path / "out", "a") == ["a 1", "a 2", "a 3"]


def test_failure_record_then_retry(bench: Path, tmp_path: Path) -> None:
    marker = tmp_path / "fail-marker"
    marker.write_text("x")
    out = run_once(tmp_path, overrides=[f"tasks.toy_score.fail_if={marker}"])
    assert {o.unit.name: o.status for o in out} == {"a": "ok", "b": "ok", "toy_score": "failed", "toy_other.b": "ok"}
    rec = store.load_records(tmp_path / "out" / "records").set_index("task").loc["toy_score"]
    assert rec["status"] == "failed" and "marker" in rec["error"] and rec["metrics"] == {}
    marker.unlink()
    again = run_once(tmp_path, overrides=[f"tasks.toy_score.fail_if={marker}"])
    assert [o.status for o in again] == ["skipped", "skipped", "ok", "skipped"]
    rec = store.load_records(tmp_path / "out" / "records").set_index("task").loc["toy_score"]
    assert rec["status"] == "ok"


def test_failed_stage_blocks_its_tasks(bench: Path, tmp_path: Path) -> None:
    out = run_once(tmp_path, overrides=["method.fail_stage=a"])
    assert [o.status for o in out] == ["failed", "blocked", "blocked", "blocked"]
    rec = store.load_records(tmp_path / "out" / "records", kind="stage").iloc[0]
    assert "failed on purpose" in rec["error"]


def test_stage_reused_when_only_keys_it_does_not_read_change(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_once(tmp_path, method="toy_split")
    assert [o.status for o in first] == ["ok"] * 4
    second = run_once(tmp_path, overrides=["method.epochs=5"], method="toy_split")
    assert [o.status for o in second] == ["skipped", "ok", "ok", "ok"]
    assert second[0].unit.key == first[0].unit.key and second[1].unit.key != first[1].unit.key
    assert executed(out, "a") == ["a 1", "a 2", "a 3"]
    stages = store.load_records(out / "records", kind="stage")
    reused = stages[(stages["task"] == "stage.a") & (stages["recipe"] != "tiny")].iloc[0]
    assert reused["recipe"].startswith("tiny+") and reused["config"]["method"]["epochs"] == 5
    assert reused["unit_key"] == first[0].unit.key and reused["epochs"] == 5
    third = run_once(tmp_path, overrides=["method.value=4"], method="toy_split")
    assert [o.status for o in third] == ["ok"] * 4
    assert third[2].record["metrics"]["score"] == 8.0


def test_stage_reading_an_undeclared_key_fails_clearly(bench: Path, tmp_path: Path) -> None:
    out = run_once(tmp_path, method="toy_undeclared")
    assert [o.status for o in out] == ["failed", "blocked", "blocked", "blocked"]
    assert "stage 'a' reads recipe key 'value', which is not in its Stage.reads" in out[0].record["error"]


def _harness(tmp_path: Path, bench: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, HARNESS_BENCHMARKS=str(bench), HARNESS_PLUGINS="toy_plugins",
               PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "--method", "toy", "--suite", "toy",
                             "--out", str(tmp_path / "out"), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(predicate, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _ckpt_step(out: Path, stage: str) -> int:
    for ck in (out / "units").glob(f"{stage}-*/ckpt.json"):
        try:
            return json.loads(ck.read_text())["step"]
        except ValueError:
            return 0
    return 0


@pytest.mark.parametrize("victim", ["unit", "harness"])
def test_resume_after_sigkill(bench: Path, tmp_path: Path, victim: str) -> None:
    """SIGKILL the unit's process (or the harness itself) mid-stage; the rerun resumes
    from the stage's checkpoint, never redoes finished units, and leaves valid records."""
    out = tmp_path / "out"
    proc = _harness(tmp_path, bench, "--set", "method.steps=40", "--set", "method.sleep=0.05")
    _wait_for(lambda: _ckpt_step(out, "b") >= 5)
    pid_file = next((out / "units").glob("b-*/pid"))
    if victim == "unit":
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
    else:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    if victim == "harness":  # the unit dies with the harness (parent-death signal)
        unit_pid = int(pid_file.read_text())
        _wait_for(lambda: not Path(f"/proc/{unit_pid}").exists() or
                  "Z" in Path(f"/proc/{unit_pid}/stat").read_text().split()[2], timeout=10)
    killed_at = _ckpt_step(out, "b")
    rerun = _harness(tmp_path, bench, "--set", "method.steps=40", "--set", "method.sleep=0.05")
    text, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, text
    steps_b = [int(s.split()[1]) for s in executed(out, "b")]
    # resumed from its checkpoint, not restarted: only the step in flight at the kill (logged
    # before its checkpoint was written) may have run twice
    again = sorted({s for s in steps_b if steps_b.count(s) > 1})
    assert sorted(set(steps_b)) == list(range(1, 41)) and again in ([], [killed_at + 1]), steps_b
    assert killed_at >= 5 and [int(s.split()[1]) for s in executed(out, "a")] == list(range(1, 41))
    df = store.load_records(out / "records")
    assert sorted(df["task"]) == ["toy_other.b", "toy_score"] and set(df["status"]) == {"ok"}
    assert not list(out.rglob("*.tmp"))


def test_two_runs_never_run_a_unit_twice(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    procs = [_harness(tmp_path, bench, "--set", "method.steps=15", "--set", "method.sleep=0.03") for _ in range(2)]
    for p in procs:
        text, _ = p.communicate(timeout=120)
        assert p.returncode == 0, text
    assert [int(s.split()[1]) for s in executed(out, "b")] == list(range(1, 16))
    assert [int(s.split()[1]) for s in executed(out, "a")] == list(range(1, 16))


def test_remaining_time_counts_only_this_process_steps(tmp_path: Path) -> None:
    from harness.run.launch.progress import ProgressLine

    path = tmp_path / "progress.json"
    line = ProgressLine()
    path.write_text(json.dumps({"step": 300, "total": 400}))  # left by the killed run
    assert "remaining" not in line(path, 1.0)
    path.write_text(json.dumps({"step": 250, "total": 400}))  # resumed from its checkpoint at 250
    assert "remaining" not in line(path, 2.0)
    path.write_text(json.dumps({"step": 260, "total": 400}))  # 10 steps in 10 s: 140 left, 140 s
    assert line(path, 12.0) == "step 260/400 (65%), elapsed 0:12, remaining ~2:20"
