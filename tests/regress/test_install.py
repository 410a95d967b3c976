"""A non-editable install (the wheel ``pip install .`` builds) runs from any folder: the
protocol files and the published reference numbers travel inside the package."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("harness", "methods", "benchmarks", "results/reference", "pyproject.toml", "setup.py", "README.md")


def test_installed_wheel_runs_from_another_folder(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for name in SOURCES:  # a copy: the in-tree build folder stays out of the checkout
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(
            ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if (ROOT / name).is_dir() else {}))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(src)], check=True, capture_output=True, timeout=300)
    shutil.rmtree(src)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_BENCHMARKS", "HARNESS_PLUGINS")}
    env["PYTHONPATH"] = str(target)

    def harness(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=600)

    where = subprocess.run([sys.executable, "-c", "import harness.core.paths as p; print(p.benchmarks_dir())"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where) == target / "harness" / "_benchmarks"
    assert (target / "bin" / "harness").is_file()
    assert (target / "harness_methods" / "mocov2" / "recipes" / "tiny.yaml").is_file()
    assert not (target / "methods").exists()  # no top-level package named like other projects' modules
    assert (target / "harness_methods" / "orl" / "README.md").is_file()  # each plugin's documentation
    assert (target / "harness" / "_benchmarks" / "tasks").is_dir()
    assert not (target / "harness" / "_benchmarks" / "perf").exists()  # the speed scripts are not protocol
    run = harness("run", "--method", "random", "--suite", "smoke", "--out", "runs")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    records = sorted(p.name for p in (elsewhere / "runs" / "records").rglob("*.json"))
    assert records == ["bg_shift.json", "coco_crop.json", "knn.json", "stage.init.json"], records
    tables = harness("tables", "--records", "runs/records", "--out", "tables")
    assert tables.returncode == 0, tables.stderr[-2000:]
    assert "random" in (elsewhere / "tables" / "LEADERBOARD.md").read_text()


def test_every_package_folder_is_in_the_wheel_list() -> None:
    import tomllib

    setuptools_cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {str(p.parent.relative_to(ROOT)).replace("/", ".").replace("methods", "harness_methods", 1)
               if p.parts[len(ROOT.parts)] == "methods" else str(p.parent.relative_to(ROOT)).replace("/", ".")
               for top in ("harness", "methods") for p in (ROOT / top).rglob("__init__.py")}
    assert set(setuptools_cfg["packages"]) == folders
    assert setuptools_cfg["package-dir"] == {"harness_methods": "methods"}
