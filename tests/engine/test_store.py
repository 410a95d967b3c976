"""Result records: atomic writes, concurrent writers, the DataFrame loader."""
from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
from pathlib import Path

import pytest

from harness.core import atomic
from harness.results import store
from harness.core.errors import HarnessError


def make_record(task: str, value: float, status: str = "ok") -> dict:
    return {"kind": "task", "method": "m", "recipe": "tiny", "seed": 0, "task": task, "status": status,
            "metrics": {"acc": value} if status == "ok" else {}, "higher_is_better": {"acc": True},
            "unit_key": f"k{task}", "config_hash": "h", "error": None if status == "ok" else "boom"}


def _writer(args: tuple[str, int]) -> None:
    folder, worker = args
    for i in range(25):
        # every worker writes its own records and also fights over one shared file
        store.write_record(Path(folder) / f"w{worker}_{i}.json", make_record(f"t{worker}_{i}", i))
        store.write_record(Path(folder) / "shared.json", make_record("shared", worker * 100 + i))


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    with mp.get_context("fork").Pool(4) as pool:
        pool.map(_writer, [(str(tmp_path), w) for w in range(4)])
    df = store.load_records(tmp_path)
    assert len(df) == 4 * 25 + 1
    shared = json.loads((tmp_path / "shared.json").read_text())
    assert shared["task"] == "shared" and shared["metrics"]["acc"] % 100 < 25
    assert not list(tmp_path.glob(".*.tmp"))


def test_loader_and_long_format(tmp_path: Path) -> None:
    store.write_record(tmp_path / "a.json", make_record("a", 1.0))
    store.write_record(tmp_path / "b.json", make_record("b", 0, status="failed"))
    df = store.load_records(tmp_path)
    assert set(df["status"]) == {"ok", "failed"}
    long = store.metrics_long(df)
    assert list(long["metric"]) == ["acc"] and list(long["value"]) == [1.0]


def test_invalid_record_refused(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="missing"):
        store.write_record(tmp_path / "x.json", {"kind": "task"})
    assert not (tmp_path / "x.json").exists()
    (tmp_path / "half.json").write_text('{"kind": "task", "meth')
    with pytest.raises(HarnessError, match="half.json: unreadable"):
        store.load_records(tmp_path)


def test_failed_write_keeps_old_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.json"
    store.write_record(path, make_record("r", 1.0))
    def boom(fd: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(atomic.os, "fsync", boom)
        with pytest.raises(OSError):
            store.write_record(path, make_record("r", 2.0))
    assert store.read_record(path)["metrics"] == {"acc": 1.0}
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("change,message", [
    ({"metricz": {}}, "unknown field"),
    ({"seed": "0"}, "field 'seed' must be int"),
    ({"metrics": {"acc": "high"}}, "not numbers"),
    ({"higher_is_better": {"acc": 1}}, "true or false"),
    ({"role": "headline"}, "role must be"),
    ({"status": "failed", "error": None}, "must say why"),
])
def test_record_schema_refuses(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        store.write_record(tmp_path / "x.json", {**make_record("r", 1.0), **change})
    assert not (tmp_path / "x.json").exists()


def test_written_record_has_every_schema_field(tmp_path: Path) -> None:
    from harness.results.record_schema import Record

    store.write_record(tmp_path / "a.json", make_record("a", 1.0))
    rec = store.read_record(tmp_path / "a.json")
    assert set(rec) == {f.name for f in dataclasses.fields(Record)}
    assert rec["schema"] == 1 and rec["role"] == "comparison"


def test_unit_spec_and_result_are_strict(tmp_path: Path) -> None:
    from harness.results.record_schema import UnitResult, UnitSpec

    spec = {"kind": "task", "name": "knn", "entry": "m:T", "version": "1", "cfg": {}, "workdir": "w",
            "data_root": "d", "seed": 0, "device": "cpu", "preset": "tiny", "method": "m", "recipe": "tiny",
            "config_hash": "h", "task": "knn", "backbone": "b.pth"}
    assert UnitSpec.from_dict(spec, "unit.json").backbone == "b.pth"
    with pytest.raises(HarnessError, match="unit.json: a task unit needs"):
        UnitSpec.from_dict({**spec, "backbone": ""}, "unit.json")
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"metrics": {"acc": 1.0}, "wall_time_s": "slow"}))
    with pytest.raises(HarnessError, match="result.json: field 'wall_time_s'"):
        UnitResult.read(path)
