"""Overhead of the pretraining loop: full-loop throughput / bare-model-step throughput.

Full loop = :func:`harness.pretrain.loop.train` (sampling, collation, batched two-view
augmentation, lr schedule, forward/backward/step, momentum update, logging), timed over its
steady steps (the one-off start-up and final checkpoint are printed apart). Bare step = forward/backward/step/momentum update of the same model on one
batch already augmented and in memory (on a GPU: the loop's bf16 autocast and
channels_last too). Both use a MoCo v2 recipe (default ``tiny``) on the synthetic
benchmark and are measured alternately in one process (``--rounds`` pairs); the printed
ratio is the median over rounds (1.0 = no overhead).

    python benchmarks/perf/pretrain_loop.py [--data-root DIR] [--steps 15] [--rounds 3]
    # GPU, paper model (ResNet-50, 224 px, AMP), a smaller batch for one device:
    python benchmarks/perf/pretrain_loop.py --device cuda --recipe paper --set batch_size=128 \
        --set data.num_workers=8 --set data.cache=true
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
from harness.core.config import apply_override
from harness.pretrain.augment import StepRNG, TwoViewBatch
from harness.pretrain.data import SceneImages, DataConfig, collate
from harness.pretrain.loop import LoopConfig, train
from harness.pretrain.optim import build_optimizer
from harness.pretrain.moco import MoCoV2Model

RECIPES = Path(__file__).resolve().parents[2] / "methods" / "mocov2" / "recipes"


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bare_steps(model: torch.nn.Module, cfg: LoopConfig, batch: dict, steps: int, device: str) -> float:
    """Seconds for ``steps`` optimisation steps on a fixed in-memory batch."""
    cuda = device == "cuda"
    model.to(device)
    if cuda and cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = build_optimizer(model, cfg.optim)
    model.train()
    _sync(device)
    t0 = time.perf_counter()
    for step in range(steps):
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=cuda and cfg.amp):
            out = model({**batch, "step": step})
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        model.after_step(step, steps)
    _sync(device)
    return time.perf_counter() - t0


def full_loop(model: torch.nn.Module, cfg: LoopConfig, data: SceneImages, fn: TwoViewBatch, root: Path,
              device: str) -> tuple[float, int, float]:
    """A whole :func:`train` call (fresh workdir): ``(seconds of the steady steps, their
    count, seconds of the whole call)``. Steady = from the end of step 1 to the end of the
    step before the last, i.e. without the first batch's start-up and the final
    checkpoint and export, which a long run pays once."""
    marks: dict[int, float] = {}

    def progress(step: int, total: int, **_: object) -> None:
        _sync(device)
        marks[step] = time.perf_counter()

    with tempfile.TemporaryDirectory() as work:
        ctx = StageContext(name="bench", cfg={}, workdir=Path(work), data_root=root, seed=0, device=device,
                           preset="bench", progress=progress)
        _sync(device)
        t0 = time.perf_counter()
        train(ctx, model, data, cfg, fn)
        _sync(device)
        whole = time.perf_counter() - t0
    last = max(marks)
    return marks[last - 1] - marks[1], last - 2, whole


def memory_batch(fn: TwoViewBatch, data: SceneImages, size: int, device: str, channels_last: bool) -> dict:
    """One augmented batch on ``device``, as the loop hands it to the model."""
    batch = fn(collate([data[i % len(data)] for i in range(size)]).to(device), StepRNG(0, 0))
    if device == "cuda" and channels_last:
        batch = {k: v.contiguous(memory_format=torch.channels_last) if torch.is_tensor(v) and v.ndim == 4 else v
                 for k, v in batch.items()}
    return batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--recipe", default="tiny", help="a MoCo v2 recipe name (tiny, paper)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    args = ap.parse_args()
    if args.data_root is None:
        from harness.data.synthetic import ensure

        args.data_root = ensure(Path(tempfile.gettempdir()) / "harness-synthetic", 0, "default")
    recipe = yaml.safe_load((RECIPES / f"{args.recipe}.yaml").read_text())
    for text in args.set:
        apply_override(recipe, text)
    data = SceneImages.from_root(args.data_root, DataConfig.from_cfg(recipe["data"]))
    steps_per_epoch = len(data) // recipe["batch_size"]
    if steps_per_epoch == 0:
        raise SystemExit(f"batch_size {recipe['batch_size']} exceeds the {len(data)} images of {args.data_root}")
    recipe["epochs"] = max(1, args.steps // steps_per_epoch)
    recipe.setdefault("loop", {})["checkpoint_every"] = 0  # one checkpoint, at the end, as any run has
    cfg = LoopConfig.from_recipe(recipe)
    fn = TwoViewBatch.from_cfg(recipe["augment"])
    n_steps = recipe["epochs"] * steps_per_epoch
    batch = memory_batch(fn, data, recipe["batch_size"], args.device, cfg.channels_last)
    torch.manual_seed(0)
    init = MoCoV2Model.from_cfg(recipe)
    bare_steps(copy.deepcopy(init), cfg, batch, 2, args.device)  # warm-up (allocator, kernels)
    images = n_steps * recipe["batch_size"]
    ratios = []
    print(f"MoCo v2 {args.recipe} ({recipe['arch']}, {recipe['augment']['size']} px, batch {recipe['batch_size']}, "
          f"{args.device}{', bf16 AMP' if args.device == 'cuda' and cfg.amp else ''})")
    for r in range(args.rounds):
        t_full, steady, whole = full_loop(copy.deepcopy(init), cfg, data, fn, args.data_root, args.device)
        t_bare = bare_steps(copy.deepcopy(init), cfg, batch, n_steps, args.device)
        full_rate, bare_rate = steady * recipe["batch_size"] / t_full, images / t_bare
        ratios.append(full_rate / bare_rate)
        print(f"round {r}: full loop {steady} steady steps {t_full:.2f} s ({full_rate:.1f} img/s; the whole call "
              f"with start-up, final checkpoint and export {whole:.2f} s), bare step {n_steps} steps {t_bare:.2f} s "
              f"({bare_rate:.1f} img/s), ratio {full_rate / bare_rate:.3f}")
    print(f"pretrain loop throughput ratio (full / bare, median of {args.rounds}): {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
