"""Suites, presets and recipes (YAML), dotted ``--set`` overrides, canonical hashing.

A resolved run configuration is a plain dict::

    {"preset": "tiny", "seed": 0, "device": "auto",
     "data": {"root": None, "synthetic": {"seed": 0, "size": "default"}},
     "method": {"name": "contracam", "recipe": "tiny", ...recipe keys...},
     "suite": "all",
     "tasks": {"<instance>": {"task": "<task name>", "version": "1", ...preset keys...}},
     "log": {"backends": ["tensorboard"]}}

Overrides address it by dotted path (``method.epochs=3``,
``tasks.knn.k=20``, ``tasks.linear_probe.cub.batch_size=64`` for the task instance
``linear_probe.cub``, ``data.synthetic.size=tiny``, ``log.backends=[tensorboard,wandb]``);
a path that does not exist is an error, so a typo never silently does nothing. ``log``
chooses where training curves go (:mod:`harness.core.tracking`) and is in no unit's key.
"""
from __future__ import annotations

import copy
import hashlib
import json
import numbers
from pathlib import Path
from typing import Any

import yaml

from harness.core import paths, registry, tracking
from harness.core.yaml_file import read_yaml
from harness.core.errors import ConfigError

RESERVED_METHOD_KEYS = ("name", "recipe")


def canonical_json(obj: Any) -> str:
    """The one JSON text of ``obj`` that hashing uses (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def config_hash(obj: Any) -> str:
    """sha256 of the canonical JSON text."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def _named_yaml(kind: str, folder: str, name: str) -> dict[str, Any]:
    d = paths.benchmarks_dir() / folder
    path = d / f"{name}.yaml"
    if not path.is_file():
        raise registry.unknown(kind, name, sorted(p.stem for p in d.glob("*.yaml")))
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def suite_names() -> list[str]:
    return sorted(p.stem for p in (paths.benchmarks_dir() / "suites").glob("*.yaml"))


def preset_names() -> list[str]:
    return sorted(p.stem for p in (paths.benchmarks_dir() / "presets").glob("*.yaml"))


def load_suite(name: str) -> dict[str, Any]:
    suite = _named_yaml("suite", "suites", name)
    if not isinstance(suite.get("tasks"), list) or not suite["tasks"]:
        raise ConfigError(f"{paths.benchmarks_dir() / 'suites' / (name + '.yaml')}: 'tasks' must be a non-empty list")
    return suite


def load_preset(name: str) -> dict[str, Any]:
    return _named_yaml("preset", "presets", name)


def suite_instances(suite: dict[str, Any], preset: str) -> dict[str, dict[str, Any]]:
    """Resolve a suite's task entries into {instance name: task config} for a preset.

    An entry is a task name, or ``{task: NAME, as: INSTANCE, with: {...},
    presets: {PRESET: {...}}}`` to run one task several times with different settings.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in suite["tasks"]:
        spec = {"task": item} if isinstance(item, str) else dict(item)
        if "task" not in spec:
            raise ConfigError(f"suite {suite.get('name')!r}: entry {item!r} has no 'task'")
        entry = registry.task_entry(spec["task"])
        instance = spec.get("as", spec["task"])
        if instance in out:
            raise ConfigError(f"suite {suite.get('name')!r}: task instance {instance!r} listed twice")
        if preset not in entry.presets:
            raise ConfigError(f"task {entry.name!r} ({entry.catalog_file}) has no preset {preset!r}")
        cfg = copy.deepcopy(entry.presets[preset]) or {}
        deep_update(cfg, spec.get("with") or {})
        deep_update(cfg, (spec.get("presets") or {}).get(preset) or {})
        out[instance] = {"task": entry.name, "version": entry.version, **cfg}
    return out


def deep_update(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_update(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], parsed value); values are YAML scalars/lists."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or any(not p for p in key.strip().split(".")):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted KEY such as method.epochs=2")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({exc})") from exc
    return key.strip().split("."), value


def _split_path(node: Any, parts: list[str]) -> list[str] | None:
    """Group dotted ``parts`` into the keys of nested dicts, preferring the longest key
    that exists at each level (task instances are named ``linear_probe.cub``); None when
    no grouping reaches an existing key."""
    if not parts:
        return []
    if not isinstance(node, dict):
        return None
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in node:
            rest = _split_path(node[key], parts[n:])
            if rest is not None:
                return [key, *rest]
    return None


def apply_override(cfg: dict[str, Any], text: str) -> None:
    path, value = parse_override(text)
    keys = _split_path(cfg, path)
    if keys is None:
        raise _missing_key(cfg, text, path)
    if keys[:1] == ["method"] and len(keys) == 2 and keys[1] in RESERVED_METHOD_KEYS:
        raise ConfigError(f"--set {text!r}: choose the method and recipe with --method/--recipe")
    node = cfg
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value


def _missing_key(cfg: dict[str, Any], text: str, path: list[str]) -> ConfigError:
    """The error for a path that reaches no key: walk the longest existing keys and name
    the first part that is missing, with the close matches at that level."""
    import difflib

    node: Any = cfg
    walked: list[str] = []
    i = 0
    while i < len(path) and isinstance(node, dict):
        n = next((n for n in range(len(path) - i, 0, -1) if ".".join(path[i:i + n]) in node), 0)
        if not n:
            break
        walked.append(".".join(path[i:i + n]))
        node, i = node[walked[-1]], i + n
    missing = ".".join([*walked, path[i]]) if i < len(path) else ".".join(path)
    options = sorted(node) if isinstance(node, dict) else []
    close = difflib.get_close_matches(path[i] if i < len(path) else path[-1], options, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    shown = f" (keys there: {', '.join(options)})" if options and not close else ""
    return ConfigError(f"--set {text!r}: no key {missing!r} in the resolved configuration{hint}{shown}")


def resolve(method: str, suite: str, preset: str = "tiny", recipe: str | None = None, seed: int = 0,
            overrides: list[str] | None = None, data_root: str | None = None) -> dict[str, Any]:
    """Build the full run configuration, validating every name and override."""
    preset_cfg = load_preset(preset)
    recipe = recipe or preset_cfg.get("recipe", preset)
    recipe_cfg = registry.load_recipe(method, recipe)
    for key in RESERVED_METHOD_KEYS:
        if key in recipe_cfg:
            raise ConfigError(f"recipe {recipe!r} of method {method!r} must not set the reserved key {key!r}")
    suite_cfg = load_suite(suite)
    data = copy.deepcopy(preset_cfg.get("data") or {"root": None})
    cfg: dict[str, Any] = {
        "preset": preset,
        "seed": seed,
        "device": preset_cfg.get("device", "auto"),
        "data": data,
        "method": {"name": method, "recipe": recipe, **recipe_cfg},
        "suite": suite,
        "tasks": suite_instances(suite_cfg, preset),
        "log": {"backends": list(tracking.DEFAULT_BACKENDS)},
    }
    for text in overrides or []:
        apply_override(cfg, text)
    if isinstance(cfg["seed"], bool) or not isinstance(cfg["seed"], numbers.Integral) or cfg["seed"] < 0:
        raise ConfigError(f"seed {cfg['seed']!r}: seeds are non-negative integers")
    cfg["seed"] = int(cfg["seed"])  # a numpy integer from Python callers hashes and serialises as an int
    tracking.check_backends(cfg["log"]["backends"])
    if data_root is not None:
        cfg["data"]["root"] = str(Path(data_root).resolve())
    if cfg["data"].get("root") is None and not cfg["data"].get("synthetic"):
        raise ConfigError(f"preset {preset!r} runs on real datasets: give --data-root DIR")
    return cfg


def only_tasks(cfg: dict[str, Any], only: list[str], skip: list[str] | None = None) -> dict[str, Any]:
    """``cfg`` with only the task instances ``only`` (all of them when empty) and without
    those in ``skip``; an instance the suite does not hold is an error."""
    unknown = [n for n in [*only, *(skip or [])] if n not in cfg["tasks"]]
    if unknown:
        raise registry.unknown(f"task instance of suite {cfg['suite']!r}", unknown[0], list(cfg["tasks"]))
    return {**cfg, "tasks": {k: v for k, v in cfg["tasks"].items()
                             if (not only or k in only) and k not in (skip or [])}}


def method_overrides(cfg: dict[str, Any]) -> dict[str, Any]:
    """The method keys that differ from the registered recipe (for labelling rows)."""
    base = registry.load_recipe(cfg["method"]["name"], cfg["method"]["recipe"])
    return {k: v for k, v in cfg["method"].items()
            if k not in RESERVED_METHOD_KEYS and base.get(k) != v}
