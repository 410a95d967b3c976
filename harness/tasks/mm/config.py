"""Build the mmengine config of a dense task: the benchmark config file plus the preset.

The preset (``benchmarks/tasks/<task>.yaml``) names the config file and the schedule;
this module applies what every dense task shares (schedule, batch split over processes,
workers, checkpoints, resume, launcher, norm layers, backbone init, no validation during
training) and offers the helpers the task modules use for their dataset and widths.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from harness.core import paths
from harness.core.errors import ConfigError
from harness.core.distributed import timeout as dist_timeout
from harness.core.tracking import MLFLOW_BACKEND, WANDB_BACKEND, vis_backend_cfgs

if TYPE_CHECKING:
    from mmengine.config import Config

# tracking backends a config may bring; log.backends alone decides which run
TRACKING_TYPES = ("TensorboardVisBackend", "WandbVisBackend", WANDB_BACKEND, "MLflowVisBackend", MLFLOW_BACKEND)
REMOTE = re.compile(r"^(torchvision|open-mmlab|openmmlab|mmcls|mmpretrain|modelzoo|https?|s3)://", re.I)


def require(preset: Mapping[str, Any], key: str, task: str) -> Any:
    """The preset value ``key``; ConfigError naming the task if it is absent."""
    if key not in preset:
        raise ConfigError(f"task {task}: preset lacks {key!r} (see benchmarks/tasks/{task}.yaml)")
    return preset[key]


def load(preset: Mapping[str, Any], task: str) -> Config:
    """The benchmark config file named by the preset's ``config`` (relative to the repo)."""
    from mmengine.config import Config

    path = paths.protocol_file(str(require(preset, "config", task)))
    if not path.is_file():
        raise ConfigError(f"task {task}: config file {path} not found")
    return Config.fromfile(str(path))


def world_size() -> int:
    """Number of processes of this run (torchrun's WORLD_SIZE; 1 without it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def apply_common(cfg: Config, preset: Mapping[str, Any], *, task: str, workdir: Path, seed: int,
                 device: str, backbone: Path, init_paths: list[str], tracking: Mapping[str, Any] | None = None,
                 unit: str = "") -> None:
    """Apply the preset's schedule and the run's environment to ``cfg`` in place.

    The visualizer keeps the config's other backends (mmengine's local JSON log) and gets
    those of ``tracking`` (:func:`harness.core.tracking.vis_backend_cfgs`; TensorBoard
    alone when empty), named after ``unit`` (default: ``task``).

    SyncBN stays only under DDP on GPUs; one process (or CPU processes, where torch has no
    SyncBN) gets plain BN. ``batch_size`` is the total over processes; workers are 0 on CPU.
    """
    iters = int(require(preset, "iters", task))
    world = world_size()
    batch = int(require(preset, "batch_size", task))
    if batch % world:
        raise ConfigError(f"task {task}: batch_size {batch} is not divisible by {world} processes")
    workers = int(preset.get("num_workers", 2)) if device == "cuda" else 0

    cfg.work_dir = str(workdir)
    if "visualizer" in cfg:  # a name of its own: mmengine keeps one visualizer per name per process
        cfg.visualizer.name = f"{task}-{os.getpid()}-{time.time_ns()}"
        ours = vis_backend_cfgs(tracking or {}, unit or task)
        kept = [b for b in cfg.visualizer.get("vis_backends") or [] if b.get("type") not in TRACKING_TYPES]
        cfg.visualizer.vis_backends = kept + ours
    cfg.resume = True
    cfg.load_from = None
    cfg.launcher = "pytorch" if world > 1 else "none"
    cfg.randomness = dict(seed=int(seed), diff_rank_seed=False, deterministic=False)
    cfg.env_cfg.dist_cfg = dict(backend="nccl" if device == "cuda" else "gloo",
                                timeout=int(dist_timeout().total_seconds()))
    if world > 1 and device != "cuda":
        # DDP of a CPU module takes no device ids (mmengine passes LOCAL_RANK otherwise).
        cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False)
    if world == 1 or device != "cuda":
        replace_norm(cfg.model, "SyncBN", "BN")

    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters + 1)
    cfg.val_dataloader = None
    cfg.val_cfg = None
    cfg.val_evaluator = None
    cfg.param_scheduler = _schedule(cfg.param_scheduler, preset, iters, task)
    cfg.optim_wrapper.optimizer.lr = float(require(preset, "lr", task))
    cfg.auto_scale_lr = dict(enable=False, base_batch_size=batch)

    cfg.train_dataloader.batch_size = batch // world
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.num_workers = workers
        loader.persistent_workers = workers > 0
    cfg.test_dataloader.batch_size = 1

    cfg.default_hooks.checkpoint = dict(
        type="CheckpointHook", by_epoch=False, interval=int(require(preset, "checkpoint_interval", task)),
        max_keep_ckpts=2, save_last=True)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=int(preset.get("log_interval", 50)),
                                    log_metric_by_epoch=False)
    cfg.log_processor = dict(type="LogProcessor", window_size=int(preset.get("log_interval", 50)), by_epoch=False)

    for path in init_paths:
        node = get_path(cfg.model, path)
        node.pop("pretrained", None)
        node.init_cfg = dict(type="Pretrained", checkpoint=str(backbone))
    if "pretrained" in cfg.model:
        cfg.model.pretrained = None


def apply_options(cfg: Config, options: Mapping[str, Any], task: str) -> None:
    """The preset's ``cfg_options``: mmengine overrides (as ``--cfg-options`` takes them),
    nested or dotted, e.g. ``{"model": {"train_cfg": {"rcnn": {"sampler": {"num": 64}}}}}``.
    Every overridden key must already exist in the config."""
    if not isinstance(options, Mapping):
        raise ConfigError(f"task {task}: cfg_options must be a mapping")
    flat = dict(_flatten(options))
    tree = cfg.to_dict()
    for key in flat:
        parent, _, leaf = key.rpartition(".")
        node = get_path(tree, parent) if parent else tree
        if not isinstance(node, dict) or leaf not in node:
            raise ConfigError(f"task {task}: cfg_options key {key!r} is not in the config")
    cfg.merge_from_dict(flat)


def _flatten(options: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in options.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, dotted + ".")
        else:
            yield dotted, value


def _schedule(schedulers: list, preset: Mapping[str, Any], iters: int, task: str) -> list[dict]:
    """The base schedulers stretched to ``iters``: warm-up length and step milestones come
    from the preset, every other scheduler ends at the last iteration (and starts where the
    warm-up ends if the base one started after iteration 0, as mmseg's poly decay does)."""
    out = []
    warmup = min(int(require(preset, "warmup_iters", task)), iters) if any(
        s["type"] == "LinearLR" for s in schedulers) else 0
    for base in schedulers:
        sched = dict(base, by_epoch=False, begin=0, end=iters)
        if sched["type"] == "LinearLR":
            sched["end"] = warmup
        elif base.get("begin", 0):
            sched["begin"] = warmup
        if sched["type"] == "MultiStepLR":
            milestones = [int(m) for m in require(preset, "milestones", task)]
            if any(m <= 0 or m >= iters for m in milestones) or milestones != sorted(milestones):
                raise ConfigError(f"task {task}: milestones {milestones} must increase inside (0, {iters})")
            sched["milestones"] = milestones
        out.append(sched)
    return out


def set_c4_widths(model: Any, depth: int) -> None:
    """Depths and widths of a C4 detector for a ResNet of ``depth``: the RPN and the RoI
    extractor read res4 (256 x expansion channels), the res5 head gives 512 x expansion."""
    expansion = 4 if depth >= 50 else 1
    model.backbone.depth = depth
    model.roi_head.shared_head.depth = depth
    model.rpn_head.in_channels = 256 * expansion
    model.rpn_head.feat_channels = 256 * expansion
    model.roi_head.bbox_roi_extractor.out_channels = 256 * expansion
    model.roi_head.bbox_head.in_channels = 512 * expansion


def replace_norm(node: Any, old: str, new: str) -> None:
    """Replace every ``type=old`` norm config under ``node`` by ``type=new``."""
    if isinstance(node, dict):
        if node.get("type") == old:
            node["type"] = new
        for value in node.values():
            replace_norm(value, old, new)
    elif isinstance(node, (list, tuple)):
        for value in node:
            replace_norm(value, old, new)


def get_path(node: Any, dotted: str) -> Any:
    """``node.a.b`` for ``"a.b"``; ConfigError when a part is absent."""
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"config has no {dotted!r}")
        node = node[part]
    return node


def leaf_datasets(dataset: Mapping[str, Any]) -> Iterator[Any]:
    """The dataset configs under wrappers (ConcatDataset, RepeatDataset, ...)."""
    if "datasets" in dataset:
        for child in dataset["datasets"]:
            yield from leaf_datasets(child)
    elif "dataset" in dataset:
        yield from leaf_datasets(dataset["dataset"])
    else:
        yield dataset


def set_transform(pipeline: list, transform: str, key: str, value: Any) -> None:
    """Set ``key`` of every ``transform`` step of ``pipeline``; ConfigError if none."""
    steps = [step for step in pipeline if step["type"] == transform]
    if not steps:
        raise ConfigError(f"pipeline has no {transform} step: {[s['type'] for s in pipeline]}")
    for step in steps:
        step[key] = value


def size(value: Any) -> tuple[int, int]:
    """A YAML ``[a, b]`` size as the tuple mmcv transforms expect."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"expected a size [a, b], got {value!r}")
    return int(value[0]), int(value[1])


def sizes(value: Any) -> list[tuple[int, int]]:
    """A YAML list of sizes as a list of tuples (RandomChoiceResize reads a list as choices)."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"expected a non-empty list of sizes, got {value!r}")
    return [size(v) for v in value]


def check_local(cfg: Config) -> None:
    """Refuse any remote checkpoint or data address: nothing may be downloaded."""
    found: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}.{key}" if where else str(key))
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")
        elif isinstance(node, str) and REMOTE.match(node):
            found.append(f"{where} = {node}")

    walk(cfg.to_dict(), "")
    if found:
        raise ConfigError("config refers to remote files (nothing may be downloaded): " + "; ".join(found))
