"""Submit each unit as a SLURM job through submitit.

Stages run as multi-node DDP jobs (one task per GPU; rank/world/master taken from the
SLURM job environment), tasks as single-node jobs; every job exports ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR`` from the SLURM job, which is what
torch.distributed and mmengine's ``pytorch`` launcher (mmdet/mmseg tasks) start from. A
task's job depends (``afterok``) on the job of the stage that exports its backbone.
Jobs are requeued on preemption or timeout, and the unit resumes from its own last
checkpoint. The job itself writes the unit's record when it ends.

Submitting is idempotent: a unit whose recorded job (``slurm_job_id`` in its workdir) is
still queued or running in ``squeue`` is not submitted again (its dependants wait for that
job), and every job holds the unit's job lock (``.job.lock``) while it runs, so two jobs
never train in one workdir.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable

from harness.run.launch.base import LaunchRequest


@dataclass
class SlurmResources:
    partition: str | None = None
    nodes: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 8
    mem: str | None = None  # e.g. "256G"
    time_min: int = 60 * 24
    task_nodes: int = 1
    account: str | None = None
    constraint: str | None = None

    def for_unit(self, unit: LaunchRequest) -> dict[str, Any]:
        """submitit parameters of one unit's job."""
        nodes = self.nodes if unit.kind == "stage" else self.task_nodes
        gpus = self.gpus_per_node
        params: dict[str, Any] = {
            "slurm_job_name": f"harness-{unit.name}-{unit.key[:8]}", "nodes": nodes,
            "tasks_per_node": max(gpus, 1), "cpus_per_task": self.cpus_per_task,
            "timeout_min": self.time_min, "slurm_signal_delay_s": 120}
        if gpus:
            params["gpus_per_node"] = gpus
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.mem:
            params["slurm_mem"] = self.mem
        if self.account:
            params["slurm_account"] = self.account
        if self.constraint:
            params["slurm_constraint"] = self.constraint
        return params


def _set_dist_env() -> dict[str, int]:
    """torch.distributed env vars from the SLURM job (submitit's view of it)."""
    import submitit

    env = submitit.JobEnvironment()
    os.environ.update(RANK=str(env.global_rank), WORLD_SIZE=str(env.num_tasks), LOCAL_RANK=str(env.local_rank),
                      MASTER_ADDR=env.hostnames[0], MASTER_PORT=os.environ.get("MASTER_PORT", "29533"))
    return {"rank": env.global_rank, "world_size": env.num_tasks}


JOB_ID_FILE = "slurm_job_id"
JOB_LOCK_FILE = ".job.lock"
ACTIVE_STATES = frozenset({"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
                           "REQUEUE_FED", "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING"})


def active_job(workdir: Path) -> str | None:
    """The id of the unit's recorded job when ``squeue`` lists it as queued or running."""
    id_file = workdir / JOB_ID_FILE
    if not id_file.is_file() or shutil.which("squeue") is None:
        return None
    job_id = id_file.read_text().strip()
    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return job_id if any(line.strip() in ACTIVE_STATES for line in out.splitlines()) else None


def hold_job_lock(workdir: Path) -> IO[str]:
    """Take the unit's job lock (non-blocking); RuntimeError when another job holds it."""
    lock = open(workdir / JOB_LOCK_FILE, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise RuntimeError(f"{workdir}: another job holds this unit ({JOB_LOCK_FILE}); not running it twice") from None
    return lock


class UnitJob:
    """The callable a SLURM job runs: the unit, then (rank 0) its record."""

    def __init__(self, label: str, spec_path: Path, finalize: Callable[[], dict[str, Any]] | None):
        self.label, self.spec_path, self.finalize = label, spec_path, finalize

    def __call__(self) -> str:
        from harness.run import unit as unit_main

        w = _set_dist_env()
        lock = hold_job_lock(self.spec_path.parent) if w["rank"] == 0 else None
        try:
            rc = unit_main.main([str(self.spec_path)])
        finally:
            if lock is not None:
                lock.close()
        if w["rank"] == 0 and self.finalize is not None:
            record = self.finalize()
            if record["status"] != "ok":
                raise RuntimeError(f"unit {self.label} failed: {record.get('error')}")
        elif rc != 0:
            raise RuntimeError(f"unit {self.label} failed on rank {w['rank']}")
        return str(self.spec_path)

    def checkpoint(self) -> Any:
        """On preemption/timeout: resubmit the same unit (it resumes from its checkpoints)."""
        import submitit

        return submitit.helpers.DelayedSubmission(UnitJob(self.label, self.spec_path, self.finalize))


class SlurmLauncher:
    """One submitit job per unit, each depending (``afterok``) on the jobs of the units it
    consumes; :meth:`launch` returns once the job is submitted. ``cluster="local"`` uses
    submitit's local executor (no dependencies there, so each job is awaited in turn)."""

    name = "slurm"
    waits = False

    def __init__(self, resources: SlurmResources, cluster: str | None = None,
                 report: Callable[[str], None] = print):
        self.resources, self.cluster, self.report = resources, cluster, report
        self.job_ids: dict[str, str] = {}  # unit key -> job id, of the jobs submitted here

    def describe(self, request: LaunchRequest) -> str:
        p = self.resources.for_unit(request)
        after = ",".join(name for name, _ in request.upstream)
        return (f"slurm nodes={p['nodes']} gpus/node={p.get('gpus_per_node', 0)} "
                f"time={p['timeout_min']}min partition={p.get('slurm_partition', '-')}"
                + (f" after={after}" if after else ""))

    def launch(self, request: LaunchRequest, keep_fds: tuple[int, ...] = ()) -> None:
        import submitit

        if (queued := active_job(request.workdir)) is not None:
            self.job_ids[request.key] = queued
            self.report(f"{request.label}: already queued or running as job {queued}; not submitted again")
            return
        executor = submitit.AutoExecutor(folder=request.workdir.parent.parent / "slurm" / "%j", cluster=self.cluster)
        params = self.resources.for_unit(request)
        if self.cluster == "local":
            params = {"timeout_min": params["timeout_min"], "tasks_per_node": 1}
        executor.update_parameters(**params)
        deps = [self.job_ids[key] for _, key in request.upstream if key in self.job_ids]
        if deps and self.cluster != "local":
            executor.update_parameters(slurm_additional_parameters={"dependency": "afterok:" + ":".join(deps)})
        job = executor.submit(UnitJob(request.label, request.spec_path, request.finalize))
        self.job_ids[request.key] = str(job.job_id)
        (request.workdir / JOB_ID_FILE).write_text(str(job.job_id))
        self.report(f"{request.label}: submitted as job {job.job_id}" + (f" (after {', '.join(deps)})" if deps else ""))
        if self.cluster == "local":
            job.exception()  # wait: the local executor has no job dependencies
