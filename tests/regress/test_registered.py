"""Every registered method x recipe plans, and every registered task x preset resolves:
a recipe or catalog file that cannot be used fails here, not in a user's run."""
from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from harness.core import config, registry
from harness.run import runner
from harness.api import Task

# the shipped registrations: entry-point methods and catalog-file tasks (other tests
# register toy plugins in this process)
METHOD_RECIPES = [(m, r) for m, e in sorted(registry.methods().items()) if e.source == "entry-point"
                  for r in registry.recipe_names(m)]
TASK_PRESETS = [(t, p) for t, e in sorted(registry.tasks().items()) if e.catalog_file is not None
                for p in config.preset_names()]


def preset_of(recipe: str) -> str:
    return "paper" if recipe.startswith("paper") else "tiny"


def resolve(method: str, recipe: str, tmp_path: Path, seed: int = 0) -> dict:
    """The ``frozen`` suite of ``method:recipe`` at the recipe's preset (``imported`` gets a
    checkpoint file whose bytes only enter its unit key: planning hashes the file and never
    loads it; loading is its stage's job, tested in tests/pretrain/test_imported_method.py)."""
    preset = preset_of(recipe)
    checkpoint = tmp_path / "backbone.pth"
    checkpoint.write_bytes(b"hashed by planning, never loaded here")
    return config.resolve(method, "frozen", preset=preset, recipe=recipe, seed=seed,
                          overrides=[f"method.checkpoint={checkpoint}"] if method == "imported" else None,
                          data_root=str(tmp_path) if preset == "paper" else None)


@pytest.mark.parametrize("method,recipe", METHOD_RECIPES, ids=[f"{m}:{r}" for m, r in METHOD_RECIPES])
def test_method_recipe_plans(method: str, recipe: str, tmp_path: Path) -> None:
    cfg = resolve(method, recipe, tmp_path)
    units = runner.plan(cfg)
    stages = [u for u in units if u.kind == "stage"]
    assert stages and units[:len(stages)] == stages, "stages run before tasks"
    assert len({u.key for u in units}) == len(units), "unit keys are unique"
    for stage in registry.load_method(method).stages(cfg["method"]):
        if isinstance(stage.run, str):
            assert callable(registry.import_entry(stage.run)), stage.run
    assert runner.recipe_label(cfg).split("+")[0] == str(cfg["method"].get("label") or recipe)
    again = runner.plan(resolve(method, recipe, tmp_path, seed=1))
    assert not {u.key for u in units} & {u.key for u in again}, "the seed enters every key"


@pytest.mark.parametrize("task,preset", TASK_PRESETS, ids=[f"{t}:{p}" for t, p in TASK_PRESETS])
def test_task_preset_resolves(task: str, preset: str) -> None:
    entry = registry.task_entry(task)
    assert preset in entry.presets, f"{entry.catalog_file} has no preset {preset!r}"
    instances = config.suite_instances({"name": "one", "tasks": [task]}, preset)
    assert instances[task]["task"] == task and instances[task]["version"] == entry.version
    assert issubclass(type(registry.load_task(task)), Task)
    assert entry.main_metrics, f"{entry.catalog_file}: no main_metrics"
    for metric in entry.main_metrics:
        assert any(fnmatch.fnmatchcase(metric, pat) for pat in entry.metrics), \
            f"{entry.catalog_file}: main metric {metric!r} is not among its metrics"
