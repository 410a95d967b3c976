"""With its modules on, D3SSL's RoI features are less coupled to their surroundings and
carry less position than the dense RoI baseline trained at the same budget (tiny recipes
on the default synthetic scenes, averaged over seeds, measured by bias_diagnostic)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from harness.core import registry
from harness.api import StageContext, TaskContext
from harness.data.synthetic.coco import write_coco
from harness.data.synthetic.sizes import DEFAULT
from harness.tasks.bias_diagnostic import BiasDiagnostic
from harness_methods.d3ssl import D3SSL
from harness_methods.d3ssl.stages.pretrain import run_pretrain
from harness_methods.d3ssl.stages.proposals import run_proposals

RECIPES = Path(__file__).resolve().parents[2] / "methods" / "d3ssl" / "recipes"
SEEDS = (0, 1, 2)


def _train_and_diagnose(recipe: str, seed: int, root: Path, work: Path) -> dict[str, float]:
    cfg = yaml.safe_load((RECIPES / f"{recipe}.yaml").read_text())
    proposals, pretrain = D3SSL().stages(cfg)
    kw = dict(data_root=root, seed=seed, device="cpu", preset="tiny", method="d3ssl", recipe=recipe)
    torch.manual_seed(seed)
    run_proposals(StageContext(name="proposals", cfg=proposals.view(cfg), workdir=work / "proposals", **kw))
    run_pretrain(StageContext(name="pretrain", cfg=pretrain.view(cfg), workdir=work / "pretrain",
                              upstream={"proposals": work / "proposals"}, **kw))
    preset = registry.task_entry("bias_diagnostic").presets["tiny"]
    ctx = TaskContext(name="bias_diagnostic", cfg=preset, workdir=work / "diag", data_root=root, seed=0,
                      device="cpu", preset="tiny", task="bias_diagnostic", backbone=work / "pretrain" / "backbone.pth")
    return BiasDiagnostic().run(ctx).metrics


@pytest.mark.slow
def test_modules_lower_coupling_and_position_decodability(tmp_path):
    torch.set_num_threads(2)
    root = tmp_path / "synth"
    write_coco(root, 0, DEFAULT, 0.85)
    means = {}
    for recipe in ("tiny-base", "tiny"):
        runs = [_train_and_diagnose(recipe, s, root, tmp_path / f"{recipe}-{s}") for s in SEEDS]
        relative = "coupling_relative_" + registry.task_entry("bias_diagnostic").presets["tiny"]["level"]
        means[recipe] = {k: sum(r[k] for r in runs) / len(runs) for k in ("coupling", relative, "position_r2")}
    base, full = means["tiny-base"], means["tiny"]
    assert full["coupling"] < base["coupling"], means
    # the spread-normalised coupling is reported, not asserted: at CPU budgets it is not lower
    # (see methods/d3ssl/README.md, "What the diagnostic shows at tiny scale")
    print(f"{relative}: base {base[relative]:.4f}, full {full[relative]:.4f}")
    assert full["position_r2"] < base["position_r2"], means
