"""The documentation site builds with --strict (no broken link, no missing page), its
reference pages come from the code, its method guide's plugin runs, and the README stays a
short entry point whose links resolve."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_docs_build_strict_with_generated_reference(tmp_path: Path) -> None:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONWARNINGS="ignore")
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    from harness.cli import _all_parsers, build_parser

    for parser in _all_parsers(build_parser()):
        assert parser.prog in cli, parser.prog
    tasks = (tmp_path / "site" / "reference" / "tasks" / "index.html").read_text()
    assert "instance_probe" in tasks and "main metrics" in tasks
    records = (tmp_path / "site" / "reference" / "records" / "index.html").read_text()
    assert "unit_key" in records and "backbone_sha256" in records and "dev-run" in records
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "data_root" in api and "StageContext" in api  # from the docstrings
    guide = (tmp_path / "site" / "guides" / "adding-a-method" / "index.html").read_text()
    assert "SimSiamModel" in guide and "export_heads" in guide  # the plugin file itself, included


def test_the_method_guide_plugin_trains_and_is_evaluated(tmp_path: Path) -> None:
    env = dict(os.environ, HARNESS_PLUGINS="simsiam_plugin", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join([str(ROOT / "docs" / "examples"), str(ROOT)]))
    res = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--method", "simsiam", "--suite", "smoke",
                          "--only", "knn", "--set", "method.epochs=1", "--out", str(tmp_path / "runs")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    from harness.results import store

    records = store.load_records(tmp_path / "runs")
    assert list(records["task"]) == ["knn"] and list(records["status"]) == ["ok"]
    stage = store.load_records(tmp_path / "runs", kind="stage").iloc[0]
    assert stage["metrics"]["steps"] == 15 and stage["metrics"]["loss"] < 0  # a negative cosine


def test_readme_is_short_and_its_links_resolve() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) < 10_000
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert links and all((ROOT / link).is_file() for link in links), [l for l in links if not (ROOT / l).is_file()]
