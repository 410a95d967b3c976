"""SLURM through submitit: a fake sbatch records the scripts (resources, dependencies);
submitit's local executor runs toy units for real; preemption resubmits the unit."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE_TESTS = ROOT / "tests" / "engine"

FAKE_SBATCH = """#!/usr/bin/env bash
# records the submitted script and answers like sbatch
n=$(ls "$SBATCH_LOG" | wc -l)
id=$((1000 + n))
for a in "$@"; do last="$a"; done
cp "$last" "$SBATCH_LOG/job_$id.sh"
echo "Submitted batch job $id"
"""


def bench(tmp_path: Path) -> Path:
    root = tmp_path / "benchmarks"
    for d in ("suites", "presets", "tasks"):
        (root / d).mkdir(parents=True, exist_ok=True)
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (root / "presets" / "tiny.yaml").write_text(f"name: tiny\nrecipe: tiny\ndevice: cpu\ndata:\n  root: {data}\n")
    (root / "suites" / "toy.yaml").write_text("name: toy\ntasks: [toy_score, toy_other]\n")
    return root


def harness(tmp_path: Path, *args: str, path_prefix: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HARNESS_BENCHMARKS=str(bench(tmp_path)), HARNESS_PLUGINS="toy_plugins",
               PYTHONPATH=os.pathsep.join([str(ENGINE_TESTS), str(ROOT)]), SBATCH_LOG=str(tmp_path / "sbatch"))
    if path_prefix:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_fake_sbatch_sees_resources_and_dependencies(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sbatch").write_text(FAKE_SBATCH)
    (bindir / "srun").write_text("#!/usr/bin/env bash\nexit 0\n")  # submitit checks that srun exists
    for tool in ("sbatch", "srun"):
        (bindir / tool).chmod(0o755)
    (tmp_path / "sbatch").mkdir()
    res = harness(tmp_path, "run", "--method", "toy", "--suite", "toy", "--out", str(tmp_path / "out"),
                  "--launcher", "slurm", "--slurm-cluster", "slurm", "--partition", "gpu", "--nodes", "2",
                  "--gpus-per-node", "8", "--mem", "200G", "--time", "600", path_prefix=bindir)
    assert res.returncode == 0, res.stdout + res.stderr
    scripts = {int(p.stem.split("_")[1]): p.read_text() for p in (tmp_path / "sbatch").glob("job_*.sh")}
    assert sorted(scripts) == [1000, 1001, 1002, 1003]  # stage a, stage b, two tasks
    a, b, t1, t2 = (scripts[i] for i in sorted(scripts))
    for s in (a, b, t1, t2):
        assert "#SBATCH --partition=gpu" in s and "#SBATCH --gpus-per-node=8" in s
        assert "#SBATCH --mem=200G" in s and "#SBATCH --time=600" in s
        assert "--requeue" in s or "#SBATCH --signal" in s
    assert "#SBATCH --nodes=2" in a and "#SBATCH --ntasks-per-node=8" in a
    assert "#SBATCH --nodes=1" in t1
    assert "dependency" not in a
    assert re.search(r"#SBATCH --dependency=afterok:1000\b", b)
    assert re.search(r"#SBATCH --dependency=afterok:1001\b", t1) and re.search(r"afterok:1001\b", t2)
    st = harness(tmp_path, "status", "--out", str(tmp_path / "out"))
    assert st.returncode == 0 and "submitted" in st.stdout and "1003" in st.stdout


def test_dry_run_prints_plan_and_resources(tmp_path: Path) -> None:
    res = harness(tmp_path, "run", "--method", "toy", "--suite", "toy", "--out", str(tmp_path / "out"),
                  "--launcher", "slurm", "--gpus-per-node", "8", "--nodes", "4", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "stage a" in res.stdout and "nodes=4 gpus/node=8" in res.stdout and "after=b" in res.stdout
    assert not (tmp_path / "out").exists()


def test_submitit_local_executor_runs_units(tmp_path: Path) -> None:
    res = harness(tmp_path, "run", "--method", "toy", "--suite", "toy", "--out", str(tmp_path / "out"),
                  "--launcher", "slurm", "--slurm-cluster", "local", "--gpus-per-node", "0")
    assert res.returncode == 0, res.stdout + res.stderr
    records = sorted(p.name for p in (tmp_path / "out" / "records").rglob("*.json"))
    assert records == ["stage.a.json", "stage.b.json", "toy_other.json", "toy_score.json"]
    st = harness(tmp_path, "status", "--out", str(tmp_path / "out"))
    assert st.stdout.count("done") == 4
    again = harness(tmp_path, "run", "--method", "toy", "--suite", "toy", "--out", str(tmp_path / "out"),
                    "--launcher", "slurm", "--slurm-cluster", "local")
    assert "submitted 0 jobs" in again.stdout


def test_preemption_resubmits_the_same_unit(tmp_path: Path) -> None:
    submitit = pytest.importorskip("submitit")
    from harness.run.launch.slurm import UnitJob

    job = UnitJob("stage a", tmp_path / "unit.json", finalize=None)
    again = job.checkpoint()
    assert isinstance(again, submitit.helpers.DelayedSubmission)
    assert again.function.spec_path == job.spec_path


FAKE_SQUEUE = """#!/usr/bin/env bash
# every job the fake sbatch accepted is still pending
while [ $# -gt 0 ]; do [ "$1" = -j ] && id="$2"; shift; done
[ -f "$SBATCH_LOG/job_$id.sh" ] && echo PENDING
exit 0
"""


def test_second_submission_skips_queued_units(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool, text in (("sbatch", FAKE_SBATCH), ("srun", "#!/usr/bin/env bash\nexit 0\n"), ("squeue", FAKE_SQUEUE)):
        (bindir / tool).write_text(text)
        (bindir / tool).chmod(0o755)
    (tmp_path / "sbatch").mkdir()
    args = ("run", "--method", "toy", "--suite", "toy", "--out", str(tmp_path / "out"), "--launcher", "slurm",
            "--slurm-cluster", "slurm", "--gpus-per-node", "8")
    first = harness(tmp_path, *args, path_prefix=bindir)
    assert first.returncode == 0, first.stdout + first.stderr
    again = harness(tmp_path, *args, path_prefix=bindir)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(p.name for p in (tmp_path / "sbatch").glob("job_*.sh")) == [f"job_{i}.sh" for i in range(1000, 1004)]
    assert again.stdout.count("not submitted again") == 4
    (tmp_path / "sbatch" / "job_1003.sh").unlink()  # the last task's job left the queue without a record
    third = harness(tmp_path, *args, path_prefix=bindir)
    assert third.stdout.count("not submitted again") == 3
    assert re.search(r"submitted as job \d+ \(after 1001\)", third.stdout), third.stdout


def test_a_job_refuses_a_unit_another_job_holds(tmp_path: Path) -> None:
    from harness.run.launch.slurm import hold_job_lock

    held = hold_job_lock(tmp_path)
    try:
        with pytest.raises(RuntimeError, match="another job holds this unit"):
            hold_job_lock(tmp_path)
    finally:
        held.close()
    hold_job_lock(tmp_path).close()  # free again once the first job ended
