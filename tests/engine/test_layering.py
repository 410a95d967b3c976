"""Import layering of the source tree, read from the import statements (no import runs):
the engine never imports a method, methods import only the engine and themselves,
launchers never import the runner back, and the configuration modules form no circle."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` / ``from ... import`` statement in ``path`` names
    (anywhere in the file, including function-level imports)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


PLUGIN_PACKAGES = ("harness_methods", "methods")  # the plugins' package, and the folder's own name


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_engine_imports_no_method() -> None:
    bad = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.split(".")[0] in PLUGIN_PACKAGES)
           for p in sources("harness")}
    assert not {k: v for k, v in bad.items() if v}


@pytest.mark.parametrize("method", sorted(p.name for p in (ROOT / "methods").iterdir()
                                          if (p / "__init__.py").is_file()))
def test_method_imports_only_the_engine_and_itself(method: str) -> None:
    others = {}
    for p in sources(f"methods/{method}"):
        names = {m for m in imported_modules(p)
                 if m.split(".")[0] in PLUGIN_PACKAGES and len(m.split(".")) > 1 and m.split(".")[1] != method}
        if names:
            others[str(p.relative_to(ROOT))] = sorted(names)
    assert not others, f"method {method!r} imports other methods: {others}"


def test_launchers_do_not_import_the_runner() -> None:
    back = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p)
                                             if m.startswith(("harness.run.runner", "harness.cli")))
            for p in sources("harness/run/launch")}
    assert not {k: v for k, v in back.items() if v}


def test_registry_does_not_import_config() -> None:
    names = imported_modules(ROOT / "harness" / "core" / "registry.py")
    assert not any(m in ("harness.core.config", "harness.core.config.read_yaml") or m.startswith("harness.core.config.")
                   for m in names), names


def test_data_layer_imports_only_core_and_itself() -> None:
    """Datasets (readers, registry, synthetic benchmark) sit below tasks, runs and results."""
    up = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p)
                                           if m.startswith("harness.") and m.split(".")[1] not in ("core", "data"))
          for p in sources("harness/data")}
    assert not {k: v for k, v in up.items() if v}


def test_core_imports_only_core() -> None:
    """``harness.core`` (registry, config, checkpoints, heads, paths) is the ground floor."""
    up = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p)
                                           if m.startswith("harness.") and m.split(".")[1] != "core")
          for p in sources("harness/core")}
    assert not {k: v for k, v in up.items() if v}


def test_no_two_modules_of_the_engine_import_each_other() -> None:
    """No import cycle of length two between modules of ``harness`` (function-level
    imports included)."""
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in sources("harness")}
    edges = {name: {m for m in imported_modules(path) if m in modules and m != name} for name, path in modules.items()}
    cycles = sorted((a, b) for a, outs in edges.items() for b in outs if a < b and a in edges.get(b, set()))
    assert not cycles
