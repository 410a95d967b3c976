"""Overhead of the pretraining loop: full-loop throughput / bare-model-step throughput.

Full loop = :func:`harness.pretrain.loop.train` (sampling, collation, batched two-view
augmentation, lr schedule, forward/backward/step, momentum update, logging, the final
checkpoint). Bare step = forward/backward/step/momentum update of the same model on one
batch already augmented and in memory. Both use the MoCo v2 ``tiny`` recipe on the
synthetic benchmark and are measured alternately in one process (``--rounds`` pairs);
the printed ratio is the median over rounds (1.0 = no overhead).

    python benchmarks/perf/pretrain_loop.py [--data-root DIR] [--steps 15] [--rounds 3]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from harness.api import StageContext
from harness.pretrain.augment import StepRNG, TwoViewBatch
from harness.pretrain.data import SceneImages, DataConfig, collate
from harness.pretrain.loop import LoopConfig, train
from harness.pretrain.optim import build_optimizer
from methods.mocov2.model import MoCoV2Model

RECIPE = Path(__file__).resolve().parents[2] / "methods" / "mocov2" / "recipes" / "tiny.yaml"


def bare_steps(model: torch.nn.Module, cfg: LoopConfig, batch: dict, steps: int) -> float:
    """Seconds for ``steps`` optimisation steps on a fixed in-memory batch."""
    opt = build_optimizer(model, cfg.optim)
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        out = model({**batch, "step": step})
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        model.after_step(step, steps)
    return time.perf_counter() - t0


def full_loop(model: torch.nn.Module, cfg: LoopConfig, data: SceneImages, fn: TwoViewBatch, root: Path) -> float:
    """Seconds for a whole :func:`train` call (fresh workdir)."""
    with tempfile.TemporaryDirectory() as work:
        ctx = StageContext(name="bench", cfg={}, workdir=Path(work), data_root=root, seed=0, device="cpu",
                           preset="tiny")
        t0 = time.perf_counter()
        train(ctx, model, data, cfg, fn)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.data_root is None:
        from harness.data.synthetic import ensure

        args.data_root = ensure(Path(tempfile.gettempdir()) / "harness-synthetic", 0, "default")
    recipe = yaml.safe_load(RECIPE.read_text())
    data = SceneImages.from_root(args.data_root, DataConfig.from_cfg(recipe["data"]))
    steps_per_epoch = len(data) // recipe["batch_size"]
    recipe["epochs"] = max(1, args.steps // steps_per_epoch)
    cfg = LoopConfig.from_recipe(recipe)
    fn = TwoViewBatch.from_cfg(recipe["augment"])
    n_steps = recipe["epochs"] * steps_per_epoch
    batch = fn(collate([data[i] for i in range(recipe["batch_size"])]), StepRNG(0, 0))
    torch.manual_seed(0)
    init = MoCoV2Model.from_cfg(recipe)
    bare_steps(copy.deepcopy(init), cfg, batch, 2)  # warm-up (allocator, oneDNN kernels)
    ratios = []
    for r in range(args.rounds):
        t_full = full_loop(copy.deepcopy(init), cfg, data, fn, args.data_root)
        t_bare = bare_steps(copy.deepcopy(init), cfg, batch, n_steps)
        ratios.append(t_bare / t_full)
        print(f"round {r}: {n_steps} steps x {recipe['batch_size']} images: full loop {t_full:.2f} s "
              f"({n_steps * recipe['batch_size'] / t_full:.1f} img/s), bare step {t_bare:.2f} s "
              f"({n_steps * recipe['batch_size'] / t_bare:.1f} img/s), ratio {t_bare / t_full:.3f}")
    print(f"pretrain loop throughput ratio (full / bare, median of {args.rounds}): {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
