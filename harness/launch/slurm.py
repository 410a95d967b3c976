"""Submit each unit as a SLURM job through submitit.

Stages run as multi-node DDP jobs (one task per GPU; rank/world/master taken from the
SLURM job environment), tasks as single-node jobs; every job exports ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR`` from the SLURM job, which is what
torch.distributed and mmengine's ``pytorch`` launcher (mmdet/mmseg tasks) start from. A
task's job depends (``afterok``) on the job of the stage that exports its backbone.
Jobs are requeued on preemption or timeout, and the unit resumes from its own last
checkpoint. The job itself writes the unit's record when it ends.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.runner import Runner, Unit


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

    def for_unit(self, unit: Unit) -> dict[str, Any]:
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


class UnitJob:
    """The callable a SLURM job runs: the unit, then (rank 0) its record."""

    def __init__(self, runner: Runner, unit: Unit, spec_path: Path):
        self.runner, self.unit, self.spec_path = runner, unit, spec_path

    def __call__(self) -> str:
        from harness import unit as unit_main

        w = _set_dist_env()
        rc = unit_main.main([str(self.spec_path)])
        if w["rank"] == 0:
            record = self.runner.finalize(self.unit)
            if record["status"] != "ok":
                raise RuntimeError(f"unit {self.unit.label} failed: {record.get('error')}")
        elif rc != 0:
            raise RuntimeError(f"unit {self.unit.label} failed on rank {w['rank']}")
        return self.unit.key

    def checkpoint(self) -> Any:
        """On preemption/timeout: resubmit the same unit (it resumes from its checkpoints)."""
        import submitit

        return submitit.helpers.DelayedSubmission(UnitJob(self.runner, self.unit, self.spec_path))


def submit(runner: Runner, units: list[Unit], data_root: Path, res: SlurmResources,
           cluster: str | None = None) -> dict[str, str]:
    """Submit every unfinished unit; returns {unit key: job id}. ``cluster="local"`` uses
    submitit's local executor (no dependencies there, so each job is awaited in turn)."""
    import submitit

    folder = runner.out / "slurm" / "%j"
    jobs: dict[str, Any] = {}
    for unit in units:
        if runner.done_record(unit) is not None:
            continue
        spec_path = runner.write_spec(unit, data_root)
        executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        params = res.for_unit(unit)
        if cluster == "local":
            params = {"timeout_min": params["timeout_min"], "tasks_per_node": 1}
        executor.update_parameters(**params)
        deps = [jobs[u.key].job_id for u in unit.upstream if u.key in jobs]
        if deps and cluster != "local":
            executor.update_parameters(slurm_additional_parameters={"dependency": "afterok:" + ":".join(deps)})
        job = executor.submit(UnitJob(runner, unit, spec_path))
        jobs[unit.key] = job
        (runner.workdir(unit) / "slurm_job_id").write_text(str(job.job_id))
        runner.report(f"submitted {unit.label} as job {job.job_id}" + (f" (after {', '.join(deps)})" if deps else ""))
        if cluster == "local":
            job.exception()  # wait: the local executor has no job dependencies
    return {k: str(j.job_id) for k, j in jobs.items()}
