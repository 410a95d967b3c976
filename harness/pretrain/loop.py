"""The pretraining loop shared by every method: :func:`train`.

Contract with the model (an ``nn.Module``):

- ``model(batch) -> dict[str, Tensor]`` with a scalar ``"loss"``; every other scalar
  entry is averaged over the log window and written to ``train_log.jsonl`` and as
  TensorBoard events (:mod:`harness.pretrain.train_log`), with lr, images/s and the
  momentum. ``batch`` is
  what the batch function returned, plus ``"step"`` (int) and ``"rng"`` (the step's
  :class:`~harness.pretrain.augment.StepRNG`, for any randomness the model needs).
- optional ``model.after_step(step, total_steps)``: called after every optimiser step
  (momentum / EMA target updates); it returns the momentum it used (or None).
- optional ``model.param_groups() -> list[dict]``: custom optimiser groups
  (``lr_mult``, ``weight_decay`` per group).
- momentum encoders, queues and EMA targets must be submodules/buffers so that they are
  part of ``state_dict()`` (and thus checkpointed).

Contract with the batch function: ``batch_fn(raw: RawBatch, rng: StepRNG) -> dict`` turns
a padded uint8 batch (already on the device) into model inputs, under ``torch.no_grad``;
:class:`~harness.pretrain.augment.TwoViewBatch` is the default two-view augmentation. It
runs one step ahead of the model, in a helper thread, so the next batch is prepared while
the current step computes; its randomness must come from the step's ``rng``. A batch
function that keeps state across steps (a queue of backgrounds, ...) exposes
``state_dict()`` / ``load_state_dict()``: the state it had after preparing a checkpointed
step is saved with that checkpoint.

What the loop guarantees:

- per-step lr (:mod:`harness.pretrain.optim`), ``ctx.progress(step, total)``;
- checkpoint ``checkpoint.pt`` every ``checkpoint_every`` steps and at the end, written
  atomically (temp file + ``os.replace``), by rank 0, never from a non-finite state;
- exact resume from that checkpoint: model (incl. queues/targets), optimiser, step (data
  order and augmentation are functions of ``(seed, step)``), the batch function's state,
  torch/numpy/python RNGs;
- a non-finite loss raises :class:`NonFiniteLossError` naming the step;
- bf16 autocast and channels_last (configurable) on CUDA. On CPU the loop runs fp32 by
  default, which repeats bit for bit: bf16 autocast on a CPU with AVX512-BF16 / AMX
  (``cpu_amp: true``, about 1.5x faster on ResNet-18 at 64 px) gave the same seed
  different losses from the second step on, and now and then a NaN weight (D3SSL tiny, at
  32 px views); under torchrun: DDP with
  SyncBatchNorm (CUDA only; on CPU/gloo each rank keeps its own BN statistics).
"""
from __future__ import annotations

import copy
import json
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, Subset

from harness.core.config_section import recipe_section
from harness.core.dev_run import stage_report
from harness.api import StageContext
from harness.core.atomic import atomic_open
from harness.core.errors import CheckpointError, ConfigError, HarnessError
from harness.pretrain import dist
from harness.pretrain.augment import StepRNG
from harness.pretrain.data import RawBatch, StepSampler, collate
from harness.pretrain.optim import OptimConfig, build_optimizer, lr_at, set_lr
from harness.pretrain.train_log import TrainLog

CHECKPOINT_FILE = "checkpoint.pt"
_FORMAT = 1

BatchFn = Callable[[RawBatch, StepRNG], dict[str, Any]]


class NonFiniteLossError(HarnessError):
    """The loss became NaN or infinite; the state of that step is never checkpointed."""


@dataclass(frozen=True)
class LoopConfig:
    """Everything the loop needs from a recipe (see :meth:`from_recipe`).

    ``batch_size`` is global (split over DDP ranks). ``checkpoint_every``: steps between
    checkpoints (0 = only at the end). ``log_every``: steps per log record. ``amp``: bf16
    autocast on CUDA; ``cpu_amp``: also on a CPU that runs bf16 natively (not reproducible
    run to run, see the module docstring).
    """

    epochs: int
    batch_size: int
    optim: OptimConfig = OptimConfig()
    checkpoint_every: int = 0
    log_every: int = 10
    num_workers: int = 0
    amp: bool = True
    cpu_amp: bool = False
    channels_last: bool = True
    sync_bn: bool = True
    grad_clip: float | None = None
    find_unused_parameters: bool = False

    @classmethod
    def from_recipe(cls, recipe: dict[str, Any]) -> "LoopConfig":
        """Read top-level ``epochs``/``batch_size``, sections ``optimizer``, ``schedule``,
        ``loop`` (the other fields of this class) and ``data.num_workers``."""
        for key in ("epochs", "batch_size"):
            if key not in recipe:
                raise ConfigError(f"recipe has no top-level {key!r}")
        loop = recipe_section(recipe, "loop", {"checkpoint_every", "log_every", "amp", "cpu_amp", "channels_last",
                                               "sync_bn", "grad_clip", "find_unused_parameters"})
        cfg = cls(epochs=int(recipe["epochs"]), batch_size=int(recipe["batch_size"]),
                  optim=OptimConfig.from_recipe(recipe),
                  num_workers=int((recipe.get("data") or {}).get("num_workers", 0)), **loop)
        if cfg.epochs < 1 or cfg.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be >= 1, got {cfg.epochs} and {cfg.batch_size}")
        return cfg


# ---------------------------------------------------------------- checkpoint I/O
def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`harness.core.atomic.atomic_open` (temp file, fsync, rename)."""
    with atomic_open(path) as fh:
        torch.save(obj, fh)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a loop checkpoint (``weights_only=True``) or raise :class:`CheckpointError`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user-facing error
        raise CheckpointError(f"{path}: cannot read the training checkpoint ({exc}); delete it to restart "
                              f"the stage from scratch") from exc
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise CheckpointError(f"{path}: not a training checkpoint of format {_FORMAT}")
    return state


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    out = {"torch": torch.get_rng_state(), "python": random.getstate(),
           "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                     float(cached)]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state()
    return out


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


# ---------------------------------------------------------------- the loop
def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _check_finite(loss: torch.Tensor, step: int, workdir: Path) -> None:
    bad = (~torch.isfinite(loss.detach().float())).float().reshape(1)
    if dist.is_distributed():
        torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
    if bad.item() > 0:
        raise NonFiniteLossError(
            f"non-finite loss ({loss.detach().float().item()}) at or before step {step + 1}; the state was not "
            f"saved (last good checkpoint, if any, stays in {workdir}). Lower the learning rate or check the data.")


def _to_channels_last(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v.contiguous(memory_format=torch.channels_last)
            if isinstance(v, torch.Tensor) and v.ndim == 4 and v.is_floating_point() else v
            for k, v in batch.items()}


def train(ctx: StageContext, model: nn.Module, data: Dataset, cfg: LoopConfig, batch_fn: BatchFn,
          checkpoint_name: str = CHECKPOINT_FILE) -> dict[str, Any]:
    """Train ``model`` on ``data`` per ``cfg``; resume from ``ctx.workdir/checkpoint_name``.

    ``data`` items are ``{"image", "index", "meta"}`` dicts (see
    :class:`~harness.pretrain.data.SceneImages`). Returns a summary: the last log record's
    scalars (``loss``, ...), ``loss_start`` (first log record), ``steps``, ``epochs``,
    ``images_per_s`` (this process's run) and ``resumed_from`` (step). The trained model
    is left in place (on the training device) for the caller to export.
    """
    info = dist.init_from_env(ctx.device)
    device = dist.device_for(info, ctx.device)
    cuda = device.type == "cuda"
    amp = cfg.amp and (cuda or (cfg.cpu_amp and cpu_bf16_supported()))
    fast_layout = cfg.channels_last and (cuda or amp)
    workdir = Path(ctx.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = workdir / checkpoint_name
    dev = ctx.dev_run
    real = StepSampler(n=len(data), global_batch=cfg.batch_size, seed=ctx.seed, epochs=cfg.epochs,
                       rank=info.rank, world_size=info.world_size)
    total, spe = real.total_steps, real.steps_per_epoch
    if dev:  # N steps at the real batch on the first batch x N images; the lr is the real schedule's
        data = Subset(data, range(min(len(data), cfg.batch_size * dev["steps"])))
        total = min(dev["steps"], total)
    sampler_args = dict(n=len(data), global_batch=cfg.batch_size, seed=ctx.seed,
                        epochs=-(-total // (len(data) // cfg.batch_size)) if dev else cfg.epochs,
                        rank=info.rank, world_size=info.world_size)
    fingerprint = {"loop": json.loads(json.dumps(asdict(cfg))), "seed": int(ctx.seed), "n_images": len(data)}

    if cfg.sync_bn and info.distributed and cuda:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if fast_layout:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg.optim)

    start, summary = 0, {}
    if ckpt_path.exists():
        state = read_checkpoint(ckpt_path)
        start, summary = _resume(state, ckpt_path, fingerprint, info, model, optimizer, batch_fn)
        ctx.log.info("resuming %s from step %d/%d", workdir, start, total)
    if start >= total:
        ctx.progress(total, total)
        return {**summary, "steps": total, "epochs": cfg.epochs, "resumed_from": start, "images_per_s": 0.0}

    net: nn.Module = model
    if info.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if cuda else None, broadcast_buffers=False,
            find_unused_parameters=cfg.find_unused_parameters)
    # the loader's own generator seeds its workers: creating its iterator must not draw from
    # the global torch stream, which a resumed run has just restored
    loader = DataLoader(data, batch_sampler=StepSampler(**sampler_args, start_step=start), collate_fn=collate,
                        num_workers=cfg.num_workers, pin_memory=cuda, persistent_workers=False,
                        generator=torch.Generator().manual_seed(ctx.seed),
                        prefetch_factor=prefetch_factor(data, cfg.batch_size // info.world_size, cfg.num_workers))
    log = TrainLog(workdir if info.is_main else None, start, ctx.tracking, ctx.name, ctx.cfg)
    first = summary.get("loss_start")
    after_step = getattr(model, "after_step", None)
    net.train()
    t0, images = time.perf_counter(), 0
    window = (t0, 0)  # (time, images) at the last log record

    def checkpointed(step: int) -> bool:
        done = step + 1
        return bool(cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == total or \
            bool(dev and done == 1)

    def prepare(step: int, raw: RawBatch) -> tuple[dict[str, Any], Any]:
        raw = raw.to(device)
        rng = StepRNG(ctx.seed, step, info.rank, info.world_size)
        with torch.no_grad():
            batch = batch_fn(raw, rng)
        if fast_layout:
            batch = _to_channels_last(batch)
        batch["step"], batch["rng"] = step, rng
        batch_state = _batch_fn_state(batch_fn) if checkpointed(step) else None
        return batch, batch_state

    ahead = _prepared_ahead(enumerate(loader, start=start), prepare, single_threaded=not cuda)
    step_s: list[float] = []
    wait_s: list[float] = []
    waited = time.perf_counter()
    for step, raw, (batch, batch_state) in ahead:
        if step >= total:
            break
        got = time.perf_counter()
        lr = lr_at(cfg.optim, step, spe, cfg.epochs, cfg.batch_size)
        set_lr(optimizer, lr)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            out = net(batch)
        loss = out["loss"]
        if not cuda:
            _check_finite(loss, step, workdir)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        momentum = after_step(step, total) if callable(after_step) else None
        log.add(out)
        images += len(raw) * info.world_size
        done = step + 1
        if done % cfg.log_every == 0 or done == total:
            if cuda:
                _check_finite(loss, step, workdir)
            now = time.perf_counter()
            rec = {"step": done, "epoch": done / spe, "lr": lr,
                   "images_per_s": (images - window[1]) / (now - window[0])}
            if momentum is not None:
                rec["momentum"] = float(momentum)
            rec = log.flush(rec)
            window = (now, images)
            summary = {k: v for k, v in rec.items() if k not in ("step", "epoch")}
            if first is None:
                first = summary.get("loss")
            summary["loss_start"] = first
        if checkpointed(step):
            if cuda:
                _check_finite(loss, step, workdir)
            _save(ckpt_path, model, optimizer, done, total, fingerprint, summary, info, batch_state)
            if dev and done == 1 and done < total:  # the dev run resumes from its first checkpoint
                # (not the batch function: the helper thread is already preparing the next batch with it)
                _resume(read_checkpoint(ckpt_path), ckpt_path, fingerprint, info, model, optimizer, None)
        ctx.progress(done, total)
        if dev:
            if cuda:
                torch.cuda.synchronize(device)
            now = time.perf_counter()
            step_s.append(now - waited)
            wait_s.append(got - waited)
            waited = now
    log.close()
    elapsed = time.perf_counter() - t0
    out = {**summary, "steps": total, "epochs": cfg.epochs, "resumed_from": start,
           "images_per_s": images / elapsed if elapsed > 0 else 0.0}
    if dev and step_s:
        out.update(stage_report(step_s, wait_s, cfg.batch_size, real.total_steps))
    return out


ANY_WORLD_ENV = "HARNESS_RESUME_ANY_WORLD_SIZE"


def _resume(state: dict[str, Any], path: Path, fingerprint: dict[str, Any], info: dist.DistInfo,
            model: nn.Module, optimizer: torch.optim.Optimizer, batch_fn: BatchFn | None) -> tuple[int, dict[str, Any]]:
    """Load a checkpoint into the model, optimiser, RNGs and batch function; (step, summary).

    The world size is part of the checkpoint's identity: its RNG states are per rank and
    the Shuffle-BN groups and per-rank batches change meaning with it, so a resume on
    another size is refused unless ``$HARNESS_RESUME_ANY_WORLD_SIZE=1`` allows it (then the
    RNG and batch-function states are not restored)."""
    if state["fingerprint"] != fingerprint:
        raise CheckpointError(f"{path} was written by a different configuration "
                              f"({state['fingerprint']} != {fingerprint}); delete it to restart the stage")
    saved_world = int(state.get("world_size", len(state["rng"])))
    same_world = saved_world == info.world_size
    if not same_world and os.environ.get(ANY_WORLD_ENV) != "1":
        raise CheckpointError(f"{path} was written by {saved_world} processes and this run has {info.world_size}; "
                              f"resume with {saved_world}, or set {ANY_WORLD_ENV}=1 to continue with fresh RNG "
                              f"streams (the per-rank data and Shuffle-BN groups change)")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if same_world:
        _set_rng_state(state["rng"][info.rank])
        batch_states = state.get("batch_fn") or []
        if batch_fn is not None and len(batch_states) == info.world_size and batch_states[info.rank] is not None:
            batch_fn.load_state_dict(batch_states[info.rank])
    return int(state["step"]), dict(state["summary"])


PREFETCH_ENV = "HARNESS_PREFETCH_GB"
DEFAULT_PREFETCH_GB = 4.0


def prefetch_factor(data: Dataset, rank_batch: int, workers: int) -> int | None:
    """Batches each DataLoader worker prepares ahead: up to 4, fewer when the padded uint8
    batches in flight (``workers x factor``, at the dataset's largest decoded size) would
    exceed ``$HARNESS_PREFETCH_GB`` (default 4 GB) of shared memory per rank. At a per-rank
    batch of 512 at 480x800 px, 8 workers x 4 would hold about 19 GB."""
    if not workers:
        return None
    base = data.dataset if isinstance(data, Subset) else data
    short, long_ = getattr(base, "short_side", None), getattr(base, "max_long", None)
    if not short:
        return 4
    batch_bytes = rank_batch * 3 * short * (long_ or 2 * short)
    budget = float(os.environ.get(PREFETCH_ENV, DEFAULT_PREFETCH_GB)) * 1024 ** 3
    return int(max(1, min(4, budget // (workers * batch_bytes))))


def cpu_bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 natively (oneDNN's check: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _prepared_ahead(steps: Any, prepare: Callable[[int, RawBatch], Any], single_threaded: bool) -> Any:
    """``(step, raw, prepare(step, raw))`` for each ``(step, raw)``, the next one prepared
    (loaded and augmented) in a helper thread while the caller trains on the current one.

    ``single_threaded`` (CPU training): the helper's torch operations use one intra-op
    thread (a per-thread OpenMP setting), so that the step keeps every core it had and the
    two do not oversubscribe them."""
    from concurrent.futures import ThreadPoolExecutor

    main_threads = torch.get_num_threads()

    def next_prepared() -> tuple[int, RawBatch, Any] | None:
        item = next(steps, None)
        return None if item is None else (item[0], item[1], prepare(*item))

    init = (lambda: torch.set_num_threads(1)) if single_threaded else None
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="batch", initializer=init) as pool:
            pending = pool.submit(next_prepared)
            while (item := pending.result()) is not None:
                pending = pool.submit(next_prepared)
                yield item
    finally:
        torch.set_num_threads(main_threads)  # the default of threads started later


def _batch_fn_state(batch_fn: BatchFn) -> Any:
    """A copy of a stateful batch function's state (None for a stateless one)."""
    state_dict = getattr(batch_fn, "state_dict", None)
    return copy.deepcopy(state_dict()) if callable(state_dict) else None


def _save(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int, total: int,
          fingerprint: dict[str, Any], summary: dict[str, Any], info: dist.DistInfo, batch_state: Any) -> None:
    rngs = dist.gather_objects(_rng_state())
    batch_states = dist.gather_objects(batch_state)
    if info.is_main:
        atomic_torch_save({"format": _FORMAT, "step": step, "total_steps": total, "model": _unwrap(model).state_dict(),
                           "optimizer": optimizer.state_dict(), "rng": rngs, "batch_fn": batch_states,
                           "world_size": info.world_size,
                           "fingerprint": fingerprint, "summary": summary}, path)
    dist.barrier()
