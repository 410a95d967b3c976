"""Plan units (method stages, then tasks), skip finished ones, run the rest.

Each unit has a key: the hash of everything that determines its output (method and
resolved recipe, seed, data identity, stage or task name and version, task config, the
keys of the units it consumes). Its workdir ``<out>/units/<name>-<key>`` holds its
artifacts, checkpoints, log, ``result.json`` (written by the unit's process) and
``done.json`` (written here after the record). A unit is done when ``done.json`` exists;
a crashed or killed unit is simply run again and resumes from its own checkpoints.
"""
from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.core import config as config_mod
from harness.core.atomic import atomic_write_text
from harness.core import paths, registry, tracking
from harness.core.text_table import text_table
from harness.results import store
from harness.api import BACKBONE_FILE
from harness.core.errors import ConfigError, DataError
from harness.results.record_schema import TASK_ROLES, Record, UnitResult, UnitSpec
from harness.run.launch import Launcher, LaunchRequest
from harness.run.launch.local import LocalLauncher
from harness.run import dev_run
from harness.run.launch.progress import fmt_duration

KEY_LEN = 16
# record fields that describe the run, not the unit: rewritten when a finished unit is reused
RUN_FIELDS = ("recipe", "recipe_name", "config", "config_hash", "pretrain_data", "epochs", "preset")


@dataclass
class Unit:
    kind: str  # "stage" or "task"
    name: str  # stage name or task instance name
    key: str
    entry: str
    version: str
    cfg: dict[str, Any]
    upstream: list["Unit"] = field(default_factory=list)
    task: str = ""  # task type, for task units
    role: str = "stage"  # stage, or a task's role (see task_role)
    not_covered: str = ""  # in a fast dev run: why the unit is not run

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def record_task(self) -> str:
        return f"stage.{self.name}" if self.kind == "stage" else self.name


@dataclass
class Outcome:
    unit: Unit
    status: str  # ok | failed | skipped (done before) | blocked (an upstream failed) | submitted
    record: dict[str, Any] | None = None
    seconds: float = 0.0


def unit_key(payload: dict[str, Any]) -> str:
    return config_mod.config_hash(payload)[:KEY_LEN]


def data_identity(cfg: dict[str, Any]) -> dict[str, Any]:
    """What identifies the data a unit reads (part of every key)."""
    data = cfg["data"]
    if data.get("root"):
        return {"root": str(data["root"])}
    from harness.data import synthetic

    return {"synthetic": data["synthetic"], "generator": synthetic.GENERATOR_VERSION}


def plan(cfg: dict[str, Any]) -> list[Unit]:
    """The units of one run, in execution order: every stage, then every task."""
    method_cfg = cfg["method"]
    method = registry.load_method(method_cfg["name"])
    entry = registry.method_entry(method_cfg["name"]).entry
    stages = method.stages(method_cfg)
    if not stages or not stages[-1].exports_backbone:
        raise ConfigError(f"method {method_cfg['name']!r}: its last stage must export the backbone")
    dev = cfg.get("dev_run")
    common = {"seed": cfg["seed"], "data": data_identity(cfg), **({"dev_run": dev} if dev else {})}
    units: list[Unit] = []
    for stage in stages:
        upstream = list(units)
        payload = {**common, "method": dict(stage.view(method_cfg)), "kind": "stage", "stage": stage.name,
                   "version": stage.version, "upstream": [u.key for u in upstream]}
        key = unit_key({**payload, "identity": stage.identity} if stage.identity else payload)
        units.append(Unit("stage", stage.name, key, entry, stage.version, method_cfg, upstream))
    backbone_unit = units[-1]
    for instance, task_cfg in cfg["tasks"].items():
        entry_t = registry.task_entry(task_cfg["task"])
        preset_cfg = {k: v for k, v in task_cfg.items() if k not in ("task", "version", "role")}
        role, why_not = task_role(instance, task_cfg), ""
        if dev:
            why_not = dev_run.covered(entry_t.name, entry_t.framework) or ""
            preset_cfg = dev_run.task_overrides(entry_t.name, entry_t.framework, preset_cfg, dev)
            role = dev_run.DEV_RUN_ROLE
        key = unit_key({"kind": "task", "task": instance, "cfg": task_cfg, "seed": cfg["seed"],
                        "data": common["data"], "backbone": backbone_unit.key,
                        **({"dev_run": dev} if dev else {})})
        units.append(Unit("task", instance, key, entry_t.entry, entry_t.version, preset_cfg,
                          [backbone_unit], task=task_cfg["task"], role=role, not_covered=why_not))
    return units


def task_role(instance: str, task_cfg: dict[str, Any]) -> str:
    """``comparison`` (a task whose numbers rank methods) or ``plumbing`` (a task run only
    to check that its pipeline works at this scale: its preset says ``role: plumbing``;
    tables and claims leave it out of comparisons). Stage units have the role ``stage``."""
    role = task_cfg.get("role", "comparison")
    if role not in TASK_ROLES:
        raise ConfigError(f"task {instance!r}: role {role!r} is not one of {TASK_ROLES}")
    return role


def recipe_label(cfg: dict[str, Any]) -> str:
    """The recipe's ``label`` key when set (``imported`` has one: a row name for the
    checkpoint), else the recipe name; plus a short hash when ``--set`` changed other keys."""
    changed = config_mod.method_overrides(cfg)
    changed.pop("label", None)
    label = str(cfg["method"].get("label") or cfg["method"]["recipe"])
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", label):
        raise ConfigError(f"method.label {label!r}: use letters, digits, '.', '_' and '-' (it names a folder)")
    return f"{label}+{config_mod.config_hash(changed)[:8]}" if changed else label


def git_sha() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("-dirty" if dirty else "")) if sha else "unknown"


def check_writable(out: Path) -> None:
    """Fail early (nothing written) when the output folder cannot be created or written."""
    probe = out
    while not probe.exists():
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(f"{probe} is not a folder")
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".harness-write-probe-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise ConfigError(f"output folder {out} is not writable ({exc})") from exc


class Runner:
    """Runs the planned units of one configuration into an output folder."""

    def __init__(self, cfg: dict[str, Any], out: Path, launcher: Launcher | None = None,
                 report: Callable[[str], None] | None = None):
        self.cfg, self.out = cfg, Path(out)
        self.launcher: Launcher = launcher or LocalLauncher()
        self.report = report or print_line
        self.records_dir = self.out / "records"
        self.recipe_label = recipe_label(cfg)
        self.tracking = tracking.run_tracking(cfg, f"{cfg['method']['name']}-{self.recipe_label}-seed{cfg['seed']}",
                                              self.out)

    # -- paths -----------------------------------------------------------------
    def workdir(self, unit: Unit) -> Path:
        return self.out / "units" / f"{unit.name.replace('/', '_')}-{unit.key}"

    def record_file(self, unit: Unit) -> Path:
        return store.record_path(self.records_dir, self.cfg["method"]["name"], self.recipe_label,
                                 self.cfg["seed"], unit.record_task)

    # -- running ---------------------------------------------------------------
    def run(self, units: list[Unit], data_root: Path) -> list[Outcome]:
        outcomes: dict[str, Outcome] = {}
        t0 = time.monotonic()
        for i, unit in enumerate(units, 1):
            prefix = f"[{i}/{len(units)}] {unit.label}"
            if unit.not_covered:
                outcomes[unit.key] = Outcome(unit, "not-covered")
                self.report(f"{prefix}: not run in a fast dev run ({unit.not_covered})")
                continue
            if any(outcomes[u.key].status in ("failed", "blocked") for u in unit.upstream):
                outcomes[unit.key] = Outcome(unit, "blocked")
                self.report(f"{prefix}: not run (an upstream unit failed)")
                continue
            outcome = outcomes[unit.key] = self._run_one(unit, data_root, prefix)
            if outcome.status != "submitted":
                self.report(f"{prefix}: {outcome.status} ({fmt_duration(outcome.seconds)}; "
                            f"run elapsed {fmt_duration(time.monotonic() - t0)})")
            if outcome.status == "failed":
                self.report(f"    error: {error_line(outcome.record)}\n    log: {self.workdir(unit) / 'log.txt'}")
        return [outcomes[u.key] for u in units]

    def _run_one(self, unit: Unit, data_root: Path, prefix: str) -> Outcome:
        wd = self.workdir(unit)
        wd.mkdir(parents=True, exist_ok=True)
        lock = open(wd / ".lock", "a+")
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.report(f"{prefix}: another process is running this unit; waiting for it")
                fcntl.flock(lock, fcntl.LOCK_EX)
            done = self.done_record(unit)
            if done is not None:
                return Outcome(unit, "skipped", done)
            start = time.monotonic()
            if not (wd / "result.json").is_file():
                self.write_spec(unit, data_root)
                self.launcher.launch(self.request(unit, prefix), keep_fds=(lock.fileno(),))
                if not self.launcher.waits:
                    return Outcome(unit, "submitted")
            record = self.finalize(unit)
            return Outcome(unit, record["status"], record, time.monotonic() - start)
        finally:
            lock.close()

    def done_record(self, unit: Unit) -> dict[str, Any] | None:
        """The record of a finished unit (rewritten into the records folder if it went
        missing there), or None when the unit still has to run."""
        done = self.workdir(unit) / "done.json"
        if not done.is_file():
            return None
        record = json.loads(done.read_text())
        if not self.record_file(unit).is_file():  # also a stage shared with another configuration
            base = self._base(unit, self.workdir(unit))
            record = {**record, **{k: base[k] for k in RUN_FIELDS}}
            store.write_record(self.record_file(unit), record, self._samples_file(unit, record))
        return record

    def _samples_file(self, unit: Unit, record: dict[str, Any]) -> Path | None:
        return self.workdir(unit) / store.SAMPLES_FILE if record.get("samples") else None

    def finalize(self, unit: Unit) -> dict[str, Any]:
        """Turn the unit's result (or error) into its record; mark it done on success."""
        wd = self.workdir(unit)
        record = self._record(unit, wd).to_dict()
        store.write_record(self.record_file(unit), record, self._samples_file(unit, record))
        if record["status"] == "ok":
            atomic_write_text(wd / "done.json", json.dumps(record, indent=1, sort_keys=True, default=str))
        return record

    def write_spec(self, unit: Unit, data_root: Path) -> Path:
        wd = self.workdir(unit)
        wd.mkdir(parents=True, exist_ok=True)
        (wd / "error.json").unlink(missing_ok=True)
        spec_path = wd / "unit.json"
        atomic_write_text(spec_path, self.spec(unit, wd, data_root).to_json())
        return spec_path

    def spec(self, unit: Unit, wd: Path, data_root: Path) -> UnitSpec:
        common = dict(kind=unit.kind, name=unit.name, entry=unit.entry, version=unit.version, cfg=unit.cfg,
                      workdir=str(wd), data_root=str(data_root), seed=self.cfg["seed"], device=self.cfg["device"],
                      preset=self.cfg["preset"], sys_path=list(sys.path), method=self.cfg["method"]["name"],
                      recipe=self.cfg["method"]["recipe"], config_hash=config_mod.config_hash(self.cfg["method"]),
                      dev_run=self._dev_run(unit), tracking=self.tracking)
        if unit.kind == "stage":
            return UnitSpec(**common, upstream={u.name: str(self.workdir(u)) for u in unit.upstream})
        return UnitSpec(**common, task=unit.name, backbone=str(self.workdir(unit.upstream[0]) / BACKBONE_FILE))

    def _dev_run(self, unit: Unit) -> dict[str, int] | None:
        dev = self.cfg.get("dev_run")
        return dev_run.stage_settings(self.cfg["method"], dev) if dev and unit.kind == "stage" else dev

    def request(self, unit: Unit, label: str) -> LaunchRequest:
        """What the launcher needs to start ``unit`` (its spec file is ``unit.json``)."""
        wd = self.workdir(unit)
        return LaunchRequest(kind=unit.kind, name=unit.name, key=unit.key, label=label,
                             spec_path=wd / "unit.json", workdir=wd,
                             upstream=tuple((u.name, u.key) for u in unit.upstream),
                             finalize=functools.partial(finalize_unit, self.cfg, self.out, unit))

    def _base(self, unit: Unit, wd: Path) -> dict[str, Any]:
        """The fields of a unit's record that describe this run and the unit."""
        method = self.cfg["method"]
        return {"kind": unit.kind, "method": method["name"], "recipe": self.recipe_label,
                "recipe_name": method["recipe"], "recipe_note": method.get("note"),
                "seed": self.cfg["seed"], "task": unit.record_task,
                "task_type": unit.task or f"stage.{unit.name}", "task_version": unit.version,
                "unit_key": unit.key, "upstream_keys": [u.key for u in unit.upstream],
                "config": {"method": method, "unit": unit.cfg, "data": self.cfg["data"],
                           "preset": self.cfg["preset"], "suite": self.cfg.get("suite")},
                "config_hash": config_mod.config_hash({"method": method, "unit": unit.cfg}),
                "pretrain_data": method.get("pretrain_data", "unknown"), "epochs": method.get("epochs"),
                "preset": self.cfg["preset"],
                "role": dev_run.DEV_RUN_ROLE if self.cfg.get("dev_run") else unit.role, "harness_git_sha": git_sha(),
                "workdir": str(wd),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def _record(self, unit: Unit, wd: Path) -> Record:
        base = self._base(unit, wd)
        result_path = wd / "result.json"
        if result_path.is_file():
            res = UnitResult.read(result_path)
            return Record(**base, status="ok", **res.to_dict())
        err_path = wd / "error.json"
        if err_path.is_file():
            err = json.loads(err_path.read_text())
            error = f"{err['type']}: {err['message']}"
        else:
            error = "unit process ended without a result; last log lines:\n" + _tail(wd / "log.txt", 15)
        return Record(**base, status="failed", error=error, metrics={}, higher_is_better={},
                      log=str(wd / "log.txt"))


def finalize_unit(cfg: dict[str, Any], out: Path, unit: Unit) -> dict[str, Any]:
    """Write the record of ``unit`` of configuration ``cfg`` under ``out`` (what a job
    started by a launcher that does not wait calls when it ends)."""
    return Runner(cfg, out).finalize(unit)


def print_line(line: str) -> None:
    print(line, flush=True)


def _tail(path: Path, n: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def prepare_data(cfg: dict[str, Any], report: Callable[[str], None]) -> Path:
    """The data root: the given one, or the synthetic benchmark (generated once, cached)."""
    data = cfg["data"]
    if data.get("root"):
        root = Path(data["root"])
        if not root.is_dir():
            raise DataError(f"data root {root} does not exist (expected a folder holding the datasets; "
                            f"see `harness data verify`)")
        return root
    from harness.data import synthetic

    seed, size = _synthetic_identity(cfg)
    report(f"data: synthetic benchmark (seed {seed}, size {size})")
    return synthetic.ensure(paths.cache_dir() / "synthetic", seed=seed, size=size)


def existing_data_root(cfg: dict[str, Any]) -> Path | None:
    """The data root when it exists now (the given one, or a synthetic benchmark already
    generated); None otherwise. Nothing is generated."""
    data = cfg["data"]
    if data.get("root"):
        return Path(data["root"]) if Path(data["root"]).is_dir() else None
    from harness.data.synthetic import build

    seed, size = _synthetic_identity(cfg)
    root = paths.cache_dir() / "synthetic" / build.cache_name(seed, size)
    return root if (root / build.MANIFEST).is_file() else None


def _synthetic_identity(cfg: dict[str, Any]) -> tuple[int, str]:
    """(seed, size) of the run's synthetic benchmark."""
    syn = cfg["data"]["synthetic"]
    return int(syn.get("seed", 0)), str(syn.get("size", "default"))


def error_line(record: dict[str, Any] | None) -> str:
    """The first line of a failed unit's error (its exception type and message)."""
    error = (record or {}).get("error") or "no error recorded"
    return error.splitlines()[0][:300]


def summary_table(outcomes: list[Outcome], max_metrics: int = 6) -> str:
    """A short text table of each task's status and main metrics."""
    mains = {name: e.main_metrics for name, e in registry.tasks().items()}
    rows = []
    for o in outcomes:
        metrics = (o.record or {}).get("metrics", {}) if o.record else {}
        wanted = mains.get(o.unit.task) or []
        metrics = {k: metrics[k] for k in wanted if k in metrics} or metrics
        shown = ", ".join(f"{k}={v:.2f}" for k, v in list(metrics.items())[:max_metrics])
        if o.record and o.record.get("status") == "failed":
            shown = error_line(o.record)[:100]
        rows.append([o.unit.label, o.status, shown])
    return text_table(["unit", "status", "metrics"], rows)
