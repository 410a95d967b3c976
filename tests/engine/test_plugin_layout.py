"""Every built-in method plugin has the same layout: ``__init__.py`` (registration),
``recipe.py`` (its recipe read into settings), ``model.py`` (the network it builds or loads),
its stage functions in ``stages.py`` (or ``stages/<stage>.py``), a recipes/ folder of YAML
files, no module named for another role (``train.py``, ``config.py``, ``models.py``,
``stage_*.py``), and a README.md with its source, algorithm, code locations, recipes and tests."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

METHODS = Path(__file__).resolve().parents[2] / "methods"
SECTIONS = ["Source", "Algorithm", "Where the code lives", "Recipes", "Tests"]
PLUGINS = sorted(p.name for p in METHODS.iterdir() if (p / "__init__.py").is_file())


def test_every_registered_builtin_has_a_plugin_folder() -> None:
    from harness.core import registry

    entries = {registry.method_entry(name).entry.split(":")[0] for name in registry.methods()}
    builtin = {e.split(".")[1] for e in entries if e.startswith("harness_methods.")}
    assert builtin == set(PLUGINS)


@pytest.mark.parametrize("plugin", PLUGINS)
def test_plugin_has_its_readme_sections_and_recipes(plugin: str) -> None:
    readme = METHODS / plugin / "README.md"
    assert readme.is_file(), f"{readme} is missing"
    headings = re.findall(r"^## (.+?)\s*$", readme.read_text(), re.M)
    assert headings[:len(SECTIONS)] == SECTIONS, f"{readme}: level-2 sections {headings}, expected {SECTIONS} first"
    recipes = sorted((METHODS / plugin / "recipes").glob("*.yaml"))
    assert recipes, f"{METHODS / plugin / 'recipes'} holds no recipe"
    text = readme.read_text()
    missing = [r.name for r in recipes if r.name not in text]
    assert not missing, f"{readme}: recipes {missing} are not described"


@pytest.mark.parametrize("plugin", PLUGINS)
def test_stage_functions_live_in_stages(plugin: str, tmp_path: Path) -> None:
    from harness.core import registry

    name = next(n for n in registry.methods() if registry.method_entry(n).entry.split(":")[0].split(".")[1] == plugin)
    method = registry.load_method(name)
    recipe = registry.load_recipe(name, "tiny")
    if plugin == "imported":  # its stage names the checkpoint file it imports
        (tmp_path / "model.pth").write_bytes(b"weights")
        recipe["checkpoint"] = str(tmp_path / "model.pth")
    prefix = f"harness_methods.{plugin}.stages"
    runs = [s.run for s in method.stages({"name": name, "recipe": "tiny", **recipe})]
    assert runs and all(isinstance(r, str) and (r.startswith(prefix + ":") or r.startswith(prefix + ".")) for r in runs), runs
    folder = METHODS / plugin
    odd = sorted(p.name for p in folder.glob("*.py") if p.name in ("train.py", "stage.py", "config.py", "models.py")
                 or p.name.startswith("stage_"))
    assert not odd, f"{folder}: {odd} (use stages.py, recipe.py, model.py)"


def _imports(path: Path) -> set[str]:
    """The modules ``path`` imports from (anywhere in the file)."""
    return {node.module for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)
            and node.module}


@pytest.mark.parametrize("plugin", PLUGINS)
def test_plugin_has_its_recipe_and_model_modules(plugin: str) -> None:
    """``recipe.py`` and ``model.py`` exist and another module of the plugin uses each."""
    folder = METHODS / plugin
    assert (folder / "stages.py").is_file() or (folder / "stages" / "__init__.py").is_file(), f"{folder}: no stages"
    for role in ("recipe", "model"):
        module = folder / f"{role}.py"
        assert module.is_file(), f"{module} is missing"
        users = [p for p in folder.rglob("*.py") if p != module and f"harness_methods.{plugin}.{role}" in _imports(p)]
        assert users, f"{module}: no module of the plugin imports it"
