"""Method and task registries.

Methods come from the ``harness.methods`` entry-point group (built-in and third-party
alike) and from ``register_method`` calls in the running process. Tasks come from the
catalog files ``benchmarks/tasks/*.yaml`` and from ``register_task``. Listing names never
imports a plugin: only :func:`load_method` / :func:`load_task` do.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.core import paths
from harness.core.yaml_file import read_yaml
from harness.core.errors import ConfigError

METHOD_GROUP = "harness.methods"


@dataclass(frozen=True)
class MethodEntry:
    name: str
    entry: str  # "module:Class"
    source: str  # "entry-point" or "runtime"
    recipes: dict[str, dict[str, Any]] | None = None  # inline recipes (runtime registrations)


@dataclass(frozen=True)
class TaskEntry:
    name: str
    entry: str
    version: str
    framework: str
    description: str = ""
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    catalog_file: Path | None = None
    main_metrics: list[str] | None = None  # what tables and summaries show (None: all)
    metrics: list[str] | None = None  # every metric it reports (glob patterns), for validating references
    reads: Any = None  # the dataset splits preflight checks (see harness.run.preflight_data)


_RUNTIME_METHODS: dict[str, MethodEntry] = {}
_RUNTIME_TASKS: dict[str, TaskEntry] = {}
PLUGINS_ENV = "HARNESS_PLUGINS"


def import_env_plugins() -> None:
    """Import the modules named in $HARNESS_PLUGINS (comma-separated); their
    ``register_method``/``register_task`` calls add methods and tasks without packaging."""
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"${PLUGINS_ENV}: cannot import plugin module {module!r} ({exc})") from exc


def _entry_of(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def register_method(name: str) -> Callable[[type], type]:
    """Class decorator registering a method plugin in this process."""

    def deco(cls: type) -> type:
        cls.name = name
        _RUNTIME_METHODS[name] = MethodEntry(name, _entry_of(cls), "runtime", getattr(cls, "recipes", None))
        return cls

    return deco


def register_task(name: str, version: str = "1", framework: str = "torch",
                  presets: dict[str, dict[str, Any]] | None = None, reads: Any = None) -> Callable[[type], type]:
    """Class decorator registering a task in this process (catalog files are the norm)."""

    def deco(cls: type) -> type:
        cls.name, cls.version = name, version
        _RUNTIME_TASKS[name] = TaskEntry(name, _entry_of(cls), version, framework,
                                         (cls.__doc__ or "").strip().split("\n")[0], presets or {}, reads=reads)
        return cls

    return deco


def unknown(kind: str, name: str, known: list[str]) -> ConfigError:
    """A "did you mean" error for an unknown registry name."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(f"unknown {kind} {name!r}{hint} (known: {', '.join(sorted(known)) or 'none'})")


def methods() -> dict[str, MethodEntry]:
    import_env_plugins()
    found = {ep.name: MethodEntry(ep.name, ep.value, "entry-point")
             for ep in importlib.metadata.entry_points(group=METHOD_GROUP)}
    found.update(_RUNTIME_METHODS)
    return dict(sorted(found.items()))


def method_entry(name: str) -> MethodEntry:
    known = methods()
    if name not in known:
        raise unknown("method", name, list(known))
    return known[name]


def import_entry(entry: str) -> Any:
    """Import ``"module:Qual.Name"`` and return the object."""
    module, _, qual = entry.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def load_method(name: str) -> Any:
    """An instance of the named method plugin."""
    entry = method_entry(name)
    try:
        cls = import_entry(entry.entry)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"method {name!r}: cannot import {entry.entry} ({exc})") from exc
    inst = cls()
    inst.name = name
    return inst


def recipe_dir(entry: MethodEntry) -> Path | None:
    """The ``recipes/`` folder beside a method's module, found without importing it."""
    spec = importlib.util.find_spec(entry.entry.partition(":")[0])
    if spec is None or spec.origin is None:
        return None
    d = Path(spec.origin).parent / "recipes"
    return d if d.is_dir() else None


def recipe_names(name: str) -> list[str]:
    entry = method_entry(name)
    if entry.recipes is not None:
        return sorted(entry.recipes)
    d = recipe_dir(entry)
    return sorted(p.stem for p in d.glob("*.yaml")) if d else []


def load_recipe(name: str, recipe: str) -> dict[str, Any]:
    """The named recipe of a method, as a dict."""

    entry = method_entry(name)
    if entry.recipes is not None:
        if recipe not in entry.recipes:
            raise unknown(f"recipe of method {name!r}:", recipe, list(entry.recipes))
        return dict(entry.recipes[recipe])
    d = recipe_dir(entry)
    path = d / f"{recipe}.yaml" if d else None
    if path is None or not path.is_file():
        raise unknown(f"recipe of method {name!r}:", recipe, recipe_names(name))
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping, got {type(data).__name__}")
    return data


def tasks() -> dict[str, TaskEntry]:
    """All tasks: catalog files first, runtime registrations override."""

    import_env_plugins()
    found: dict[str, TaskEntry] = {}
    for path in sorted(paths.benchmarks_dir().joinpath("tasks").glob("*.yaml")):
        data = read_yaml(path)
        try:
            found[data["name"]] = TaskEntry(
                name=data["name"], entry=data["entry"], version=str(data["version"]),
                framework=data.get("framework", "torch"), description=data.get("description", ""),
                presets=data.get("presets") or {}, catalog_file=path, main_metrics=data.get("main_metrics"),
                metrics=data.get("metrics"), reads=data.get("reads"))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: a task catalog file needs name, entry and version ({exc})") from exc
    found.update(_RUNTIME_TASKS)
    return dict(sorted(found.items()))


def task_entry(name: str) -> TaskEntry:
    known = tasks()
    if name not in known:
        raise unknown("task", name, list(known))
    return known[name]


def load_task(name: str) -> Any:
    """An instance of the named task."""
    entry = task_entry(name)
    try:
        cls = import_entry(entry.entry)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"task {name!r}: cannot import {entry.entry} ({exc})") from exc
    inst = cls()
    inst.name, inst.version = name, entry.version
    return inst
