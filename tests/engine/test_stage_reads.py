"""Stages that declare the recipe keys they read: their keys and their view of the recipe."""
from __future__ import annotations

import copy
import pickle

import pytest

from harness.core import config
from harness.run import runner
from harness.api import Stage, StageRecipe
from harness.core.errors import ConfigError


def test_stage_recipe_refuses_undeclared_keys() -> None:
    recipe = {"name": "m", "recipe": "r", "a": 1, "b": {"x": 2}, "c": 3}
    view = StageRecipe(recipe, ("a", "b"), "s1")
    assert dict(view) == {"name": "m", "recipe": "r", "a": 1, "b": {"x": 2}}
    assert view["a"] == 1 and view.get("b") == {"x": 2} and "a" in view
    assert view.get("absent", 7) == 7 and "absent" not in view  # keys the recipe lacks: defaults as usual
    for read in (lambda: view["c"], lambda: view.get("c"), lambda: "c" in view):
        with pytest.raises(ConfigError, match="stage 's1' reads recipe key 'c', which is not in its Stage.reads"):
            read()
    for clone in (copy.deepcopy(view), pickle.loads(pickle.dumps(view))):
        assert dict(clone) == dict(view)
        with pytest.raises(ConfigError):
            clone.get("c")


def test_stage_view_is_the_whole_recipe_without_reads() -> None:
    recipe = {"name": "m", "recipe": "r", "a": 1}
    assert Stage("s", run="x:y").view(recipe) is recipe
    assert dict(Stage("s", run="x:y", reads=()).view(recipe)) == {"name": "m", "recipe": "r"}


def _keys(method: str, *overrides: str) -> dict[str, str]:
    cfg = config.resolve(method, "smoke", preset="tiny", overrides=list(overrides))
    return {u.name: u.key for u in runner.plan(cfg) if u.kind == "stage"}


@pytest.mark.parametrize("method,override,kept", [
    ("orl", "method.orl.loss_weights.inter=0.5", ["byol", "correspondence"]),
    ("orl", "method.correspondence.top_n=8", ["byol"]),
    ("orl", "method.data.short_side=80", []),
    ("orl", "method.epochs=3", []),
    ("contracam", "method.bgmix.aug_prob=0.5", ["pretrain", "cam_boxes"]),
    ("contracam", "method.variant=crop+bgmix", ["pretrain", "cam_boxes"]),
    ("contracam", "method.cam.iterations=5", ["pretrain"]),
    ("contracam", "method.epochs=2", []),
    ("d3ssl", "method.decoupling.weight=0.5", ["proposals"]),
    ("d3ssl", "method.proposals.max_boxes=50", []),
])
def test_changing_a_later_stage_keeps_earlier_stage_keys(method: str, override: str, kept: list[str]) -> None:
    base, new = _keys(method), _keys(method, override)
    assert [s for s in base if new[s] == base[s]] == kept
