"""The typed files of a run: a unit's spec (``unit.json``), its result (``result.json``,
written by the unit's process) and its record (one JSON file per result).

Each is a dataclass with ``to_dict`` and a strict ``from_dict``: a missing required field,
an unknown field or a value of the wrong type is an error naming the file and the field,
so a record that the tables read has exactly the schema written here.
"""
from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from harness.core.errors import HarnessError

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed")
KINDS = ("stage", "task")
ROLES = ("comparison", "plumbing", "stage", "dev-run")
TASK_ROLES = ROLES[:2]  # the roles a suite may give a task instance
UNRANKED_ROLES = (ROLES[1], ROLES[3])  # records that never rank methods: plumbing and dev-run

T = TypeVar("T", bound="_Typed")


def _is(value: Any, kind: str) -> bool:
    """Whether ``value`` is of the schema type ``kind`` (a trailing ``?`` allows None)."""
    if kind.endswith("?"):
        return value is None or _is(value, kind[:-1])
    if kind == "number":
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, {"str": str, "bool": bool, "dict": dict, "list": list}[kind])


class _Typed:
    """Strict conversion from and to plain dicts, driven by each field's ``kind`` metadata."""

    @classmethod
    def from_dict(cls: type[T], data: Any, source: str) -> T:
        if not isinstance(data, dict):
            raise HarnessError(f"{source}: expected a JSON object ({cls.__name__}), got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise HarnessError(f"{source}: unknown field(s) {unknown} in a {cls.__name__} "
                               f"(known: {', '.join(sorted(fields))})")
        missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise HarnessError(f"{source}: not a {cls.__name__} (missing {', '.join(missing)})")
        for name, value in data.items():
            kind = fields[name].metadata["kind"]
            if not _is(value, kind):
                raise HarnessError(f"{source}: field {name!r} must be {kind.rstrip('?')}"
                                   f"{' or null' if kind.endswith('?') else ''}, got {value!r:.80}")
        obj = cls(**data)
        obj.check(source)
        return obj

    @classmethod
    def read(cls: type[T], path: Path) -> T:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise HarnessError(f"{path}: unreadable {cls.__name__} ({exc})") from exc
        return cls.from_dict(data, str(path))

    def check(self, source: str) -> None:
        """Checks across fields (none by default)."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, default=str) + "\n"


def _f(kind: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING) -> Any:
    return field(default=default, default_factory=factory, metadata={"kind": kind})


@dataclass(frozen=True)
class UnitSpec(_Typed):
    """What a unit's process runs (``unit.json``, written by the runner)."""

    kind: str = _f("str")
    name: str = _f("str")
    entry: str = _f("str")
    version: str = _f("str")
    cfg: dict[str, Any] = _f("dict")
    workdir: str = _f("str")
    data_root: str = _f("str")
    seed: int = _f("int")
    device: str = _f("str")
    preset: str = _f("str")
    method: str = _f("str")
    recipe: str = _f("str")
    config_hash: str = _f("str")
    sys_path: list[str] = _f("list", factory=list)
    upstream: dict[str, str] = _f("dict", factory=dict)  # stage: earlier stage name -> workdir
    task: str = _f("str", "")  # task: its instance name
    backbone: str = _f("str", "")  # task: the backbone file it evaluates
    dev_run: dict[str, int] | None = _f("dict?", None)  # --fast-dev-run: {"steps": N, "images": K}
    tracking: dict[str, Any] = _f("dict", factory=dict)  # harness.core.tracking.run_tracking

    def check(self, source: str) -> None:
        if self.kind not in KINDS:
            raise HarnessError(f"{source}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "task" and not (self.task and self.backbone):
            raise HarnessError(f"{source}: a task unit needs 'task' and 'backbone'")


@dataclass(frozen=True, kw_only=True)
class _Produced(_Typed):
    """What a unit's process reports besides its metrics (shared by result and record)."""

    dataset: dict[str, Any] = _f("dict", factory=dict)  # the data read: name, split sizes, content fingerprints
    framework: dict[str, Any] = _f("dict", factory=dict)  # what computed it (torch, mmdet, mmseg) and its versions
    extra: dict[str, Any] = _f("dict", factory=dict)  # task-specific details (chosen hyperparameters, counts)
    backbone_sha256: str | None = _f("str?", None)  # sha256 of the backbone file a task evaluated
    samples: dict[str, Any] | None = _f("dict?", None)  # the per-item values file beside the record and its sha256
    versions: dict[str, str] = _f("dict", factory=dict)  # Python, library versions and the CPU model (cpu)
    device: str | None = _f("str?", None)  # the device it ran on (cpu, cuda:0 and its card)
    world_size: int = _f("int", 1)  # processes of the unit (DDP ranks)
    wall_time_s: float | None = _f("number?", None)  # the unit's wall time in seconds


@dataclass(frozen=True, kw_only=True)
class UnitResult(_Produced):
    """What a unit's process produced (``result.json``)."""

    metrics: dict[str, float] = _f("dict")
    higher_is_better: dict[str, bool] = _f("dict", factory=dict)

    def check(self, source: str) -> None:
        _check_metrics(self.metrics, self.higher_is_better, source)


@dataclass(frozen=True, kw_only=True)
class Record(_Produced):
    """One result: a task's metrics (or a stage's summary) for one method, recipe and seed,
    with everything that identifies how it was produced."""

    kind: str = _f("str")  # stage (a method's stage) or task (an evaluation)
    method: str = _f("str")  # the method's registered name
    recipe: str = _f("str")  # the row label (recipe name, or label, + override hash)
    seed: int = _f("int")  # the run's seed (pretraining and task)
    task: str = _f("str")  # the task instance name (a stage record: the stage name)
    status: str = _f("str")  # ok or failed
    metrics: dict[str, float] = _f("dict")  # metric name -> value (percentages unless the task says otherwise)
    higher_is_better: dict[str, bool] = _f("dict")  # metric name -> its direction
    unit_key: str = _f("str")  # hash of everything that determines the result (reruns with the same key are skipped)
    config_hash: str = _f("str")  # hash of the whole resolved configuration of the run
    schema: int = _f("int", SCHEMA_VERSION)  # version of this record format
    recipe_name: str = _f("str", "")  # the recipe file the run started from
    recipe_note: str | None = _f("str?", None)  # the recipe's note (e.g. where it departs from the paper)
    task_type: str = _f("str", "")  # the registered task the instance runs
    task_version: str = _f("str", "")  # the task's catalog version (a protocol change bumps it)
    role: str = _f("str", "comparison")  # comparison (ranks methods), plumbing (pipeline check), stage or dev-run
    upstream_keys: list[str] = _f("list", factory=list)  # unit keys of the units it consumed (the backbone's stage)
    config: dict[str, Any] = _f("dict", factory=dict)  # the resolved configuration the unit ran with
    pretrain_data: str = _f("str", "unknown")  # the pretraining images (synthetic, coco, imagenet, ...)
    epochs: int | None = _f("int?", None)  # the recipe's pretraining epochs
    preset: str = _f("str", "")  # tiny or paper
    harness_git_sha: str = _f("str", "unknown")  # the harness commit (-dirty: uncommitted changes)
    workdir: str = _f("str", "")  # the unit's folder (artifacts, checkpoints, log.txt)
    created: str = _f("str", "")  # when the record was written (UTC, ISO 8601)
    error: str | None = _f("str?", None)  # why a failed unit failed
    log: str | None = _f("str?", None)  # a failed unit's log file

    def check(self, source: str) -> None:
        if self.status not in STATUSES:
            raise HarnessError(f"{source}: status must be 'ok' or 'failed', got {self.status!r}")
        if self.kind not in KINDS:
            raise HarnessError(f"{source}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.role not in ROLES:
            raise HarnessError(f"{source}: role must be one of {ROLES}, got {self.role!r}")
        if self.status == "failed" and not self.error:
            raise HarnessError(f"{source}: a failed record must say why (field 'error')")
        _check_metrics(self.metrics, self.higher_is_better, source)


def _check_metrics(metrics: dict[str, Any], hib: dict[str, Any], source: str) -> None:
    bad = [k for k, v in metrics.items() if not _is(v, "number")]
    if bad:
        raise HarnessError(f"{source}: metric(s) {bad} are not numbers")
    bad = [k for k, v in hib.items() if not isinstance(v, bool)]
    if bad:
        raise HarnessError(f"{source}: higher_is_better of {bad} must be true or false")
