"""Every built-in method plugin documents itself the same way: a README.md with its source,
algorithm, code locations, recipes and tests, and a recipes/ folder of YAML files."""
from __future__ import annotations

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
