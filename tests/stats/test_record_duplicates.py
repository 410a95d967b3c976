"""Records of one unit found in several folders: identical results count once, different
results are refused (exit 2, both files named) unless the first folder is chosen."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.results import store
from record_fixtures import write_rec

ROOT = Path(__file__).resolve().parents[2]


def two_folders(tmp_path: Path, second_value: float) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    for seed in (0, 1):
        write_rec(a, "mocov2", "tiny", seed, "knn", {"knn_top1": 60.0 + seed})
        write_rec(a, "random", "tiny", seed, "knn", {"knn_top1": 50.0 + seed})
    write_rec(b, "mocov2", "tiny", 0, "knn", {"knn_top1": second_value})
    return a, b


def test_identical_records_in_two_folders_count_once(tmp_path: Path) -> None:
    a, b = two_folders(tmp_path, 60.0)
    recs = store.load_records([a, b])
    assert len(recs) == 4 and len(recs[recs["method"] == "mocov2"]) == 2


def test_different_results_of_one_unit_are_refused_naming_both_files(tmp_path: Path) -> None:
    a, b = two_folders(tmp_path, 61.5)
    with pytest.raises(HarnessError) as err:
        store.load_records([a, b])
    assert str(a / "mocov2" / "tiny" / "seed0" / "knn.json") in str(err.value)
    assert str(b / "mocov2" / "tiny" / "seed0" / "knn.json") in str(err.value)
    kept = store.load_records([a, b], duplicates="first")
    assert sorted(kept[kept["method"] == "mocov2"]["metrics"].map(lambda m: m["knn_top1"])) == [60.0, 61.0]


def test_another_recipe_label_of_the_same_unit_is_its_own_row(tmp_path: Path) -> None:
    write_rec(tmp_path / "a", "contracam", "tiny", 0, "knn", {"knn_top1": 60.0})
    path = write_rec(tmp_path / "a", "contracam", "tiny-bgmix", 0, "knn", {"knn_top1": 60.0})
    assert path.is_file() and len(store.load_records([tmp_path / "a"])) == 2


@pytest.mark.parametrize("command", [["tables"], ["compare", "random:tiny", "mocov2:tiny"], ["claims"]])
def test_commands_exit_2_on_conflicting_records(tmp_path: Path, command: list[str]) -> None:
    a, b = two_folders(tmp_path, 61.5)
    args = [sys.executable, "-m", "harness.cli", *command, "--records", str(a), "--records", str(b)]
    res = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "--duplicates first" in res.stderr, res.stdout + res.stderr
    message = " ".join(res.stderr.split())
    for folder in (a, b):
        assert str(folder / "mocov2" / "tiny" / "seed0" / "knn.json") in message
    ok = subprocess.run(args + ["--duplicates", "first"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr
