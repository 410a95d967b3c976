"""What a rerun of the same configuration does, and what a record says.

A finished unit is never launched again (its record is reused, and rewritten when it went
missing); a failed unit is launched again; a unit whose process wrote its result but
whose record was never written is finalised without running again; an interrupted unit
continues in the same workdir. Units run in this process here (a launcher that calls
the unit's entry point), so these checks take seconds.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from harness.api import Task, TaskContext, TaskResult
from harness.core import atomic
from harness.core import config
from harness.core.registry import register_task
from harness.results import store
from harness.run import runner
from harness.run.launch.base import LaunchRequest
from harness.run.unit import main as unit_main


class InProcess:
    """A launcher that runs each unit's entry point in this process and remembers which."""

    name = "in-process"
    waits = True

    def __init__(self) -> None:
        self.launched: list[str] = []

    def describe(self, request: LaunchRequest) -> str:
        return "in process"

    def launch(self, request: LaunchRequest, keep_fds: tuple[int, ...] = ()) -> None:
        self.launched.append(request.name)
        unit_main([str(request.spec_path)])


@register_task("toy_items", version="1", presets={"tiny": {"n": 6}})
class ToyItems(Task):
    """A task that keeps its per-item values: item i is right when i is even."""

    def run(self, ctx: TaskContext) -> TaskResult:
        import numpy as np

        from harness.results import samples

        n = int(ctx.cfg["n"])
        label = np.zeros(n, int)
        pred = np.where(np.arange(n) % 2 == 0, 0, 1)
        table = samples.SampleTable({"test": samples.accuracy_group([f"i{k}" for k in range(n)], pred, label)},
                                    {"top1": samples.accuracy_spec("top1", "test")})
        return TaskResult({"top1": table.value("top1")}, {"top1": True}, samples=table)


def resolve(overrides: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(method="toy", suite="toy", preset="tiny", overrides=overrides)
    args.update(kw)
    return config.resolve(**args)


def run(out: Path, cfg: dict[str, Any]) -> tuple[list[runner.Outcome], InProcess, runner.Runner]:
    launcher = InProcess()
    r = runner.Runner(cfg, out, launcher=launcher, report=lambda line: None)
    return r.run(runner.plan(cfg), Path(cfg["data"]["root"])), launcher, r


def executed(out: Path, stage: str) -> list[str]:
    logs = sorted((out / "units").glob(f"{stage}-*/executed.log"))
    return [line for log in logs for line in log.read_text().splitlines()]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- reruns
def test_finished_units_are_skipped_with_their_records_unchanged(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first, launcher, r = run(out, resolve())
    assert [o.status for o in first] == ["ok"] * 4
    assert launcher.launched == ["a", "b", "toy_score", "toy_other.b"]
    backbone = r.workdir(first[1].unit) / "backbone.pth"
    before = {p: p.read_text() for p in (out / "records").rglob("*.json")}
    exported = sha256(backbone)
    mtime = backbone.stat().st_mtime_ns

    second, launcher, _ = run(out, resolve())
    assert launcher.launched == []
    assert [o.status for o in second] == ["skipped"] * 4
    assert [o.unit.key for o in second] == [o.unit.key for o in first]
    for o1, o2 in zip(first, second):
        assert o2.record == json.loads((r.workdir(o1.unit) / "done.json").read_text())
        assert o2.record["metrics"] == o1.record["metrics"] and o2.record["unit_key"] == o1.unit.key
    assert executed(out, "a") == ["a 1", "a 2", "a 3"] and executed(out, "b") == ["b 1", "b 2", "b 3"]
    assert sha256(backbone) == exported and backbone.stat().st_mtime_ns == mtime  # the export is reused as is
    assert {p: p.read_text() for p in (out / "records").rglob("*.json")} == before


def test_a_finished_unit_whose_record_went_missing_gets_it_back_without_running(bench: Path,
                                                                                 tmp_path: Path) -> None:
    out = tmp_path / "out"
    first, _, r = run(out, resolve())
    score = r.record_file(first[2].unit)
    kept = store.read_record(score)
    score.unlink()
    stage_b = r.record_file(first[1].unit)
    stage_b.unlink()
    second, launcher, _ = run(out, resolve())
    assert launcher.launched == [] and [o.status for o in second] == ["skipped"] * 4
    back = store.read_record(score)
    assert back["metrics"] == kept["metrics"] and back["unit_key"] == kept["unit_key"]
    assert back["status"] == "ok" and back["recipe"] == "tiny"
    assert store.read_record(stage_b)["metrics"] == first[1].record["metrics"]


def test_a_stage_shared_with_another_configuration_is_reused_under_its_labels(bench: Path,
                                                                              tmp_path: Path) -> None:
    out = tmp_path / "out"
    first, _, _ = run(out, resolve(method="toy_split"))
    second, launcher, r = run(out, resolve(["method.epochs=5"], method="toy_split"))
    assert launcher.launched == ["b", "toy_score", "toy_other.b"]  # stage a does not read epochs
    assert second[0].status == "skipped" and second[0].unit.key == first[0].unit.key
    rec = store.read_record(r.record_file(second[0].unit))
    assert rec["recipe"] == r.recipe_label and r.recipe_label.startswith("tiny+")
    assert rec["epochs"] == 5 and rec["config"]["method"]["epochs"] == 5
    assert rec["unit_key"] == first[0].unit.key and rec["metrics"] == first[0].record["metrics"]
    assert executed(out, "a") == ["a 1", "a 2", "a 3"]


def test_per_item_tables_travel_with_their_records(bench: Path, tmp_path: Path) -> None:
    (bench / "suites" / "items.yaml").write_text("name: items\ntasks: [toy_items]\n")
    out = tmp_path / "out"
    first, _, r = run(out, resolve(suite="items", overrides=["tasks.toy_items.n=7"]))
    path = r.record_file(first[2].unit)
    rec = store.read_record(path)
    beside = path.with_name("toy_items.samples.npz")
    assert rec["metrics"] == {"top1": pytest.approx(400 / 7)} and beside.is_file()
    assert rec["samples"]["file"] == beside.name and rec["samples"]["sha256"] == sha256(beside)
    assert rec["samples"]["metrics"] == ["top1"]
    loaded = store.load_records(out / "records").iloc[0].to_dict()
    assert store.load_samples(loaded).value("top1") == pytest.approx(400 / 7)
    path.unlink()
    beside.unlink()
    second, launcher, _ = run(out, resolve(suite="items", overrides=["tasks.toy_items.n=7"]))
    assert launcher.launched == [] and second[2].status == "skipped"
    assert beside.is_file() and store.read_record(path)["samples"]["sha256"] == sha256(beside)


def test_a_failed_unit_runs_again_and_only_it(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    marker = tmp_path / "marker"
    marker.write_text("x")
    over = [f"tasks.toy_score.fail_if={marker}"]
    first, launcher, r = run(out, resolve(over))
    assert {o.unit.name: o.status for o in first} == {"a": "ok", "b": "ok", "toy_score": "failed",
                                                      "toy_other.b": "ok"}
    wd = r.workdir(first[2].unit)
    assert not (wd / "done.json").exists() and (wd / "error.json").is_file()
    failed = store.read_record(r.record_file(first[2].unit))
    assert failed["status"] == "failed" and "marker" in failed["error"] and failed["metrics"] == {}

    again, launcher, _ = run(out, resolve(over))  # still failing: launched again, still failed
    assert launcher.launched == ["toy_score"] and again[2].status == "failed"
    marker.unlink()
    fixed, launcher, _ = run(out, resolve(over))
    assert launcher.launched == ["toy_score"]
    assert [o.status for o in fixed] == ["skipped", "skipped", "ok", "skipped"]
    rec = store.read_record(r.record_file(first[2].unit))
    assert rec["status"] == "ok" and rec["error"] is None and rec["metrics"]["score"] == 6.0
    assert (wd / "done.json").is_file() and not (wd / "error.json").exists()
    last, launcher, _ = run(out, resolve(over))
    assert launcher.launched == [] and [o.status for o in last] == ["skipped"] * 4


def test_a_failed_stage_blocks_what_consumes_it(bench: Path, tmp_path: Path) -> None:
    out, launcher, _ = run(tmp_path / "out", resolve(["method.fail_stage=a"]))
    assert [o.status for o in out] == ["failed", "blocked", "blocked", "blocked"]
    assert launcher.launched == ["a"]
    assert not list((tmp_path / "out" / "records").rglob("toy_score.json"))


def test_a_result_without_a_record_is_finalised_without_running_again(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first, _, r = run(out, resolve())
    unit = first[2].unit
    wd = r.workdir(unit)
    (wd / "done.json").unlink()  # the harness died after the unit wrote result.json
    r.record_file(unit).unlink()
    second, launcher, _ = run(out, resolve())
    assert launcher.launched == []
    assert [o.status for o in second] == ["skipped", "skipped", "ok", "skipped"]
    assert second[2].record["metrics"] == first[2].record["metrics"] and (wd / "done.json").is_file()


def test_an_interrupted_unit_continues_in_its_workdir(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = resolve(["method.steps=5"])
    r = runner.Runner(cfg, out, launcher=InProcess(), report=lambda line: None)
    stage_a = runner.plan(cfg)[0]
    wd = r.workdir(stage_a)
    wd.mkdir(parents=True)
    (wd / "ckpt.json").write_text(json.dumps({"step": 3}))  # what a killed run left
    (wd / "executed.log").write_text("a 1\na 2\na 3\n")
    (wd / "error.json").write_text(json.dumps({"type": "KeyboardInterrupt", "message": ""}))
    outcomes, launcher, _ = run(out, cfg)
    assert [o.status for o in outcomes] == ["ok"] * 4
    assert executed(out, "a") == ["a 1", "a 2", "a 3", "a 4", "a 5"]
    assert outcomes[0].record["metrics"]["steps"] == 5.0


# ---------------------------------------------------------------- keys
def keys(cfg: dict[str, Any]) -> dict[str, str]:
    return {u.name: u.key for u in runner.plan(cfg)}


@pytest.mark.parametrize("edit, changed", [
    (lambda c: c["tasks"]["toy_score"].update(version="3"), {"toy_score"}),
    (lambda c: c["tasks"]["toy_other.b"].update(offset=5), {"toy_other.b"}),
    (lambda c: c["method"].update(steps=4), {"a", "b", "toy_score", "toy_other.b"}),
    (lambda c: c["method"].update(value=7), {"a", "b", "toy_score", "toy_other.b"}),
    (lambda c: c.update(seed=2), {"a", "b", "toy_score", "toy_other.b"}),
    (lambda c: c["data"].update(root="/elsewhere"), {"a", "b", "toy_score", "toy_other.b"}),
    (lambda c: c.update(dev_run={"steps": 2, "images": 4}), {"a", "b", "toy_score", "toy_other.b"}),
])
def test_a_changed_input_changes_exactly_the_keys_that_depend_on_it(bench: Path, edit, changed: set[str]) -> None:
    base = resolve()
    cfg = resolve()
    edit(cfg)
    old, new = keys(base), keys(cfg)
    assert {name for name in old if new[name] != old[name]} == changed


def test_keys_follow_the_upstream_keys_and_ignore_dict_order(bench: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import toy_plugins

    cfg = resolve()
    base = keys(cfg)
    assert len(set(base.values())) == 4  # no two units share a key
    reordered = {**cfg, "method": dict(reversed(list(cfg["method"].items()))),
                 "tasks": {k: dict(reversed(list(v.items()))) for k, v in cfg["tasks"].items()}}
    assert keys(reordered) == base
    monkeypatch.setattr(toy_plugins.ToyMethod, "stages", lambda self, c: [
        toy_plugins.Stage("a", run="toy_plugins:stage_a", version="2"),
        toy_plugins.Stage("b", run="toy_plugins:stage_b", exports_backbone=True)])
    new = keys(cfg)
    assert all(new[name] != base[name] for name in base)  # a new stage a: new keys downstream too


def test_config_hash_is_sha256_of_canonical_json() -> None:
    obj = {"b": [1, 2.5, None], "a": {"y": "z", "x": True}}
    text = '{"a":{"x":true,"y":"z"},"b":[1,2.5,null]}'
    assert config.canonical_json(obj) == text
    assert config.config_hash(obj) == hashlib.sha256(text.encode()).hexdigest()
    assert config.config_hash({"a": 1}) != config.config_hash({"a": 1.5})
    assert runner.unit_key(obj) == config.config_hash(obj)[:runner.KEY_LEN] and runner.KEY_LEN == 16


# ---------------------------------------------------------------- record contents
def test_records_say_what_produced_them(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = resolve(["method.value=4"])
    outcomes, _, r = run(out, cfg)
    a, b, score, other = outcomes
    label = "tiny+" + config.config_hash({"value": 4})[:8]
    assert r.recipe_label == label
    rec = store.read_record(out / "records" / "toy" / label / "seed0" / "toy_score.json")
    backbone = r.workdir(b.unit) / "backbone.pth"
    assert rec["kind"] == "task" and rec["task"] == "toy_score" and rec["task_type"] == "toy_score"
    assert rec["task_version"] == "2" and rec["seed"] == 0 and rec["method"] == "toy"
    assert rec["recipe"] == label and rec["recipe_name"] == "tiny" and rec["preset"] == "tiny"
    assert rec["unit_key"] == score.unit.key and rec["upstream_keys"] == [b.unit.key]
    assert rec["metrics"] == {"score": 8.0, "err": 0.25} and rec["higher_is_better"] == {"score": True, "err": False}
    assert rec["backbone_sha256"] == sha256(backbone)
    assert rec["config_hash"] == config.config_hash({"method": cfg["method"], "unit": score.unit.cfg})
    assert rec["config"]["unit"] == {"scale": 2.0, "fail_if": None} and rec["config"]["method"]["value"] == 4
    assert rec["workdir"] == str(r.workdir(score.unit)) and rec["role"] == "comparison"
    assert rec["pretrain_data"] == "none" and rec["epochs"] == 1 and rec["status"] == "ok"
    other_rec = store.read_record(out / "records" / "toy" / label / "seed0" / "toy_other.b.json")
    assert other_rec["task"] == "toy_other.b" and other_rec["task_type"] == "toy_other"
    assert other_rec["metrics"] == {"acc": 52.0}
    stage = store.read_record(out / "records" / "toy" / label / "seed0" / "stage.b.json")
    assert stage["kind"] == "stage" and stage["task_type"] == "stage.b" and stage["upstream_keys"] == [a.unit.key]
    assert stage["metrics"] == {"steps": 3.0, "final_loss": 0.5} and stage["backbone_sha256"] == sha256(backbone)
    stages = store.load_records(out / "records", kind="stage")
    assert sorted(stages["task"]) == ["stage.a", "stage.b"]
    assert len(store.load_records(out / "records", kind=None)) == 4


def test_spec_of_a_task_points_at_its_backbone(bench: Path, tmp_path: Path) -> None:
    cfg = resolve(seed=3)
    units = runner.plan(cfg)
    r = runner.Runner(cfg, tmp_path / "out", launcher=InProcess(), report=lambda line: None)
    spec = r.spec(units[2], r.workdir(units[2]), Path("/data"))
    assert spec.backbone == str(r.workdir(units[1]) / "backbone.pth") and spec.seed == 3
    assert spec.task == "toy_score" and spec.kind == "task" and spec.cfg == units[2].cfg
    stage = r.spec(units[1], r.workdir(units[1]), Path("/data"))
    assert stage.upstream == {"a": str(r.workdir(units[0]))} and stage.kind == "stage"


# ---------------------------------------------------------------- configuration
def test_suite_entries_merge_catalog_with_and_preset_settings(bench: Path) -> None:
    (bench / "suites" / "merge.yaml").write_text(
        "name: merge\ntasks:\n"
        "  - {task: toy_other, as: o1}\n"
        "  - {task: toy_other, as: o2, with: {offset: 2, extra: {a: 1, b: 2}}}\n"
        "  - {task: toy_other, as: o3, with: {offset: 2, extra: {a: 1, b: 2}}, presets: {tiny: {extra: {b: 5}}}}\n"
        "  - {task: toy_other, as: o4, with: {offset: 2}, presets: {big: {offset: 9}}}\n")
    tasks = resolve(suite="merge")["tasks"]
    assert tasks["o1"] == {"task": "toy_other", "version": "1", "offset": 1}
    assert tasks["o2"] == {"task": "toy_other", "version": "1", "offset": 2, "extra": {"a": 1, "b": 2}}
    assert tasks["o3"]["extra"] == {"a": 1, "b": 5} and tasks["o3"]["offset"] == 2
    assert tasks["o4"]["offset"] == 2


def test_deep_update_merges_nested_dicts_and_copies_values() -> None:
    base = {"a": {"x": 1, "y": {"p": 1, "q": 2}}, "b": [1]}
    new = {"a": {"y": {"q": 3}, "z": 4}, "b": [2, 3], "c": {"k": [1]}}
    out = config.deep_update(base, new)
    assert out is base
    assert base == {"a": {"x": 1, "y": {"p": 1, "q": 3}, "z": 4}, "b": [2, 3], "c": {"k": [1]}}
    new["c"]["k"].append(2)
    assert base["c"] == {"k": [1]}  # no aliasing of the new values


@pytest.mark.parametrize("text, value", [("3", 3), ("0.5", 0.5), ("[1, 2]", [1, 2]), ("null", None),
                                         ("true", True), ("abc", "abc"), ("'3'", "3"), ("", "")])
def test_override_values_are_yaml_scalars(bench: Path, text: str, value: Any) -> None:
    cfg = resolve([f"tasks.toy_other.b.offset={text}"])
    assert cfg["tasks"]["toy_other.b"]["offset"] == value
    assert cfg["tasks"]["toy_score"]["scale"] == 2.0  # nothing else changed


def test_overrides_apply_in_order_and_reach_nested_keys(bench: Path) -> None:
    cfg = resolve(["method.steps=4", "method.steps=6", "seed=5"])
    assert cfg["method"]["steps"] == 6 and cfg["seed"] == 5
    assert config.method_overrides(cfg) == {"steps": 6}
    assert config.method_overrides(resolve()) == {}
    only = config.only_tasks(resolve(), ["toy_score"])
    assert list(only["tasks"]) == ["toy_score"]
    assert list(config.only_tasks(resolve(), [], ["toy_score"])["tasks"]) == ["toy_other.b"]


# ---------------------------------------------------------------- files
def test_atomic_write_replaces_or_keeps(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "f.txt"
    atomic.atomic_write_text(path, "one")
    atomic.atomic_write_text(path, "two")
    assert path.read_text() == "two"
    with pytest.raises(RuntimeError):
        with atomic.atomic_open(path) as fh:
            fh.write(b"half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "two" and sorted(p.name for p in path.parent.iterdir()) == ["f.txt"]
    atomic.atomic_write_json(tmp_path / "j.json", {"a": 1})
    assert json.loads((tmp_path / "j.json").read_text()) == {"a": 1}


def _record(task: str) -> dict[str, Any]:
    return {"kind": "task", "method": "m", "recipe": "r", "seed": 1, "task": task, "status": "ok",
            "metrics": {"top1": 50.0}, "higher_is_better": {"top1": True}, "unit_key": "k", "config_hash": "h"}


def test_record_paths_and_per_item_tables(tmp_path: Path) -> None:
    import numpy as np

    from harness.core.errors import HarnessError
    from harness.results import samples

    assert store.record_path(tmp_path, "m", "r+ab", 2, "linear_probe/cub") == \
        tmp_path / "m" / "r+ab" / "seed2" / "linear_probe_cub.json"
    table = samples.SampleTable({"test": samples.accuracy_group(["a", "b"], np.array([1, 0]), np.array([1, 1]))},
                                {"top1": samples.accuracy_spec("top1", "test")})
    src = tmp_path / "unit" / "samples.npz"
    src.parent.mkdir()
    src.write_bytes(table.to_bytes())
    rec = {**_record("knn"), "samples": {"file": "samples.npz", "sha256": sha256(src), "metrics": ["top1"]}}
    path = store.record_path(tmp_path / "records", "m", "r", 1, "knn")
    store.write_record(path, rec, src)
    loaded = store.load_records(tmp_path / "records").iloc[0].to_dict()
    assert loaded["samples"]["file"] == "knn.samples.npz" and (path.parent / "knn.samples.npz").is_file()
    assert store.load_samples(loaded).value("top1") == 50.0
    (path.parent / "knn.samples.npz").write_bytes(table.to_bytes() + b"x")
    with pytest.raises(HarnessError, match="sha256"):
        store.load_samples(loaded)
    bad = {**rec, "samples": {**rec["samples"], "sha256": "0" * 64}}
    with pytest.raises(HarnessError, match="sha256"):
        store.write_record(store.record_path(tmp_path / "records", "m", "r", 1, "other"), bad, src)
    assert not (tmp_path / "records" / "m" / "r" / "seed1" / "other.json").exists()
    (tmp_path / "records" / ".hidden.json").write_text("{}")
    stage = {**_record("stage.a"), "kind": "stage"}
    store.write_record(tmp_path / "records" / "m" / "r" / "seed1" / "stage.a.json", stage)
    assert list(store.load_records(tmp_path / "records")["task"]) == ["knn"]
    assert list(store.load_records(tmp_path / "records", kind="stage")["task"]) == ["stage.a"]
    assert sorted(store.load_records(tmp_path / "records", kind=None)["task"]) == ["knn", "stage.a"]


# ---------------------------------------------------------------- status
def test_status_reports_each_unit_state(bench: Path, tmp_path: Path) -> None:
    import fcntl

    from harness.run import status

    out = tmp_path / "out"
    marker = tmp_path / "marker"
    marker.write_text("x")
    outcomes, _, r = run(out, resolve([f"tasks.toy_score.fail_if={marker}"]))
    rows = {row["unit"]: row for row in status.status_rows(out)}
    assert set(rows) == {"stage a", "stage b", "task toy_score", "task toy_other.b"}
    assert rows["stage a"]["state"] == "done" and rows["stage a"]["record"] == "yes"
    assert rows["stage a"]["key"] == outcomes[0].unit.key and rows["stage b"]["progress"] == "3/3"
    assert rows["task toy_score"]["state"] == "failed" and rows["task toy_score"]["record"] == ""
    wd = r.workdir(outcomes[2].unit)
    with open(wd / ".lock", "a+") as fh:  # another process runs the unit now
        fcntl.flock(fh, fcntl.LOCK_EX)
        assert status.unit_state(wd) == "running"
    assert status.unit_state(wd) == "failed"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert status.unit_state(fresh) == "pending"
    (fresh / "slurm_job_id").write_text("123\n")
    assert status.unit_state(fresh) == "submitted"
    (fresh / "slurm_job_id").unlink()
    (fresh / "log.txt").write_text("step 1\nlast line\n\n")
    assert status.unit_state(fresh) == "started" and status.last_line(fresh / "log.txt") == "last line"
