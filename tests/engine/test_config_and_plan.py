"""Config resolution, overrides, hashing and unit planning."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.core import config
from harness.run import runner
from harness.core.errors import ConfigError


def resolve(**kw):
    args = dict(method="toy", suite="toy", preset="tiny")
    args.update(kw)
    return config.resolve(**args)


def test_plan_order_stages_then_tasks(bench: Path) -> None:
    units = runner.plan(resolve())
    assert [(u.kind, u.name) for u in units] == [
        ("stage", "a"), ("stage", "b"), ("task", "toy_score"), ("task", "toy_other.b")]
    assert units[1].upstream == [units[0]]
    assert all(u.upstream == [units[1]] for u in units[2:])
    assert units[3].cfg["offset"] == 2 and units[2].version == "2"


def test_keys_stable_across_resolves(bench: Path) -> None:
    assert [u.key for u in runner.plan(resolve())] == [u.key for u in runner.plan(resolve())]
    assert config.config_hash(resolve()) == config.config_hash(resolve())


@pytest.mark.parametrize("change", [
    dict(seed=1), dict(recipe="big"), dict(overrides=["method.value=4"]),
    dict(overrides=["tasks.toy_score.scale=3.0"]), dict(data_root="/tmp/other-root")])
def test_any_config_change_changes_keys(bench: Path, change: dict) -> None:
    base = {u.name: u.key for u in runner.plan(resolve())}
    new = {u.name: u.key for u in runner.plan(resolve(**change))}
    if change.get("overrides", [""])[0].startswith("tasks."):
        assert new["toy_score"] != base["toy_score"]
        assert new["a"] == base["a"] and new["toy_other.b"] == base["toy_other.b"]
    else:
        assert all(new[k] != base[k] for k in base)


def test_stage_change_propagates_downstream_only(bench: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import toy_plugins

    base = {u.name: u.key for u in runner.plan(resolve())}
    monkeypatch.setattr(toy_plugins.ToyMethod, "stages", lambda self, cfg: [
        toy_plugins.Stage("a", run="toy_plugins:stage_a"),
        toy_plugins.Stage("b", run="toy_plugins:stage_b", version="2", exports_backbone=True)])
    new = {u.name: u.key for u in runner.plan(resolve())}
    assert new["a"] == base["a"] and new["b"] != base["b"] and new["toy_score"] != base["toy_score"]


def test_override_types_and_errors(bench: Path) -> None:
    cfg = resolve(overrides=["method.steps=7", "method.fail_stage=a", "seed=3"])
    assert cfg["method"]["steps"] == 7 and cfg["method"]["fail_stage"] == "a" and cfg["seed"] == 3
    with pytest.raises(ConfigError, match="did you mean steps"):
        resolve(overrides=["method.stepz=1"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        resolve(overrides=["method.steps"])
    with pytest.raises(ConfigError, match="--method/--recipe"):
        resolve(overrides=["method.recipe=big"])


def test_unknown_names_suggest(bench: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'toy'"):
        resolve(method="toi")
    with pytest.raises(ConfigError, match="unknown suite 'tyo'"):
        resolve(suite="tyo")
    with pytest.raises(ConfigError, match="unknown preset"):
        resolve(preset="huge")


def test_malformed_yaml_names_file_and_line(bench: Path) -> None:
    (bench / "suites" / "bad.yaml").write_text("name: bad\ntasks: [toy_score\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: line \d+"):
        resolve(suite="bad")


def test_recipe_label_marks_overrides(bench: Path) -> None:
    assert runner.recipe_label(resolve()) == "tiny"
    label = runner.recipe_label(resolve(overrides=["method.value=9"]))
    assert label.startswith("tiny+") and label != runner.recipe_label(resolve(overrides=["method.value=8"]))
