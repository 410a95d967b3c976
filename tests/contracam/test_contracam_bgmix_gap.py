"""Directional regression: background mixup lowers the BG-Gap on the biased synthetic set.

The ``tiny-bgmix`` recipe pretrains vanilla MoCo v2 on the synthetic Backgrounds
Challenge training images (class <-> background biased), computes ContraCAM masks and
pretrains MoCo v2 again from scratch, with the same budget, with background mixup. The
BG-Gap (acc(mixed_same) - acc(mixed_rand) of a linear probe, task ``bg_shift``) of the
second model must be smaller, averaged over seeds.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from harness.api import StageContext, TaskContext
from harness.core.registry import import_entry, task_entry
from harness_methods.contracam import ContraCAM

RECIPE = Path(__file__).resolve().parents[2] / "methods" / "contracam" / "recipes" / "tiny-bgmix.yaml"
SEEDS = (0, 1, 2)


def bg_gap(backbone: Path, root: Path, work: Path) -> float:
    entry = task_entry("bg_shift")
    task = import_entry(entry.entry)()
    ctx = TaskContext(name="bg_shift", cfg=dict(entry.presets["tiny"]), workdir=work, data_root=root, seed=0,
                      device="cpu", preset="tiny", task="bg_shift", backbone=backbone)
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    return task.run(ctx).metrics["bg_gap"]


@pytest.mark.slow
def test_bgmix_has_a_smaller_bg_gap_than_vanilla_mocov2(tmp_path):
    from harness.core import paths
    from harness.data.synthetic import ensure

    root = ensure(paths.cache_dir() / "synthetic", seed=0, size="default")  # the engine's shared cache
    cfg = yaml.safe_load(RECIPE.read_text())
    gaps = {"vanilla": [], "bgmix": []}
    for seed in SEEDS:
        work, upstream = tmp_path / f"seed{seed}", {}
        for stage in ContraCAM().stages(cfg):
            ctx = StageContext(name=stage.name, cfg=stage.view(copy.deepcopy(cfg)), workdir=work / stage.name, data_root=root,
                               seed=seed, device="cpu", preset="tiny", method="contracam", recipe="tiny-bgmix",
                               upstream=dict(upstream), config_hash=f"bgmix-gap-{seed}")
            ctx.workdir.mkdir(parents=True, exist_ok=True)
            torch.manual_seed(seed)
            import_entry(stage.run)(ctx)
            upstream[stage.name] = ctx.workdir
        gaps["vanilla"].append(bg_gap(upstream["pretrain"] / "backbone.pth", root, work / "gap-vanilla"))
        gaps["bgmix"].append(bg_gap(upstream["objaware_pretrain"] / "backbone.pth", root, work / "gap-bgmix"))
    mean = {k: sum(v) / len(v) for k, v in gaps.items()}
    print(f"BG-Gap per seed: {gaps}; mean {mean}")
    assert mean["bgmix"] < mean["vanilla"], gaps
