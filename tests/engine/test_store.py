"""Result records: atomic writes, concurrent writers, the DataFrame loader."""
from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from harness import atomic, store
from harness.errors import HarnessError


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
