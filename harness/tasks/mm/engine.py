"""Run one dense task through mmengine's Runner: check, configure, train, test, report."""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from harness.core import paths
from harness.api import Task, TaskContext, TaskResult
from harness.core.checkpoints import sha256_file
from harness.core.errors import CheckpointError, ConfigError
from harness.core.distributed import timeout as dist_timeout
from harness.core.atomic import atomic_write_text
from harness.tasks.mm import config as mmconfig
from harness.tasks.mm.datasets import DenseDataset

WORK_SUBDIR = "mmengine"
BACKBONE_CHECK_FILE = "backbone_check.json"  # in the mmengine work dir: the check passed, for which file
VERSION_PACKAGES = ("mmdet", "mmsegmentation", "mmcv", "mmengine", "torch", "torchvision", "pycocotools")


@dataclass(frozen=True)
class DenseTask:
    """How one dense task plugs into :func:`run_dense`.

    ``configure(cfg, preset, dataset, arch)`` points the config at the dataset, sets the
    evaluator, the classes, the image sizes and the widths for the backbone arch.
    ``read_metrics(raw)`` turns the evaluator output into (metrics, undefined names).
    ``init_paths`` are the model-config paths that get the backbone file as init;
    ``parts`` maps a backbone-file key prefix to the model module that must hold it
    (by default the whole file initialises ``backbone``).
    """

    task: str
    framework: str
    check_data: Callable[[Path], DenseDataset]
    configure: Callable[[Any, Mapping[str, Any], DenseDataset, str], None]
    read_metrics: Callable[[Mapping[str, float]], tuple[dict[str, float], list[str]]]
    init_paths: tuple[str, ...] = ("backbone",)
    parts: Mapping[str, str] = field(default_factory=lambda: {"": "backbone"})


class DenseTaskRunner(Task):
    """A task that is one :class:`DenseTask` run through :func:`run_dense`."""

    spec: ClassVar[DenseTask]

    def spec_for(self, ctx: TaskContext) -> DenseTask:
        """The spec this unit runs (a subclass may bind unit options into it)."""
        return self.spec

    def run(self, ctx: TaskContext) -> TaskResult:
        return run_dense(ctx, self.spec_for(ctx))

    def preflight(self, ctx: TaskContext) -> list[str]:
        """Read the annotations and build the complete mmengine config (in ``ctx.workdir``)."""
        spec = self.spec_for(ctx)
        arch = str(mmconfig.require(ctx.cfg, "arch", spec.task))
        meta_arch = (ctx.backbone_meta or {}).get("arch")
        if meta_arch and meta_arch != arch:
            raise ConfigError(f"task {spec.task}: the preset expects a {arch} backbone, the recipe exports {meta_arch}")
        dataset = _checked_data(spec.check_data, Path(ctx.data_root))
        try:
            build_config(ctx, spec, dataset)
        except FileNotFoundError as exc:
            if Path(exc.filename or "").name != Path(ctx.backbone).name:
                raise
            return [f"built up to what the backbone file itself sets ({exc.filename} is written by the stage)"]
        return []


@functools.lru_cache(maxsize=32)
def _checked_data(check: Callable[[Path], DenseDataset], data_root: Path) -> DenseDataset:
    """``check(data_root)`` once per process (several tasks read the same annotations)."""
    return check(data_root)


def build_config(ctx: TaskContext, spec: DenseTask, dataset: DenseDataset):
    """The complete mmengine Config of ``spec`` for this unit."""
    preset = ctx.cfg
    arch = str(mmconfig.require(preset, "arch", spec.task))
    cfg = mmconfig.load(preset, spec.task)
    mmconfig.apply_common(
        cfg, preset, task=spec.task, workdir=Path(ctx.workdir) / WORK_SUBDIR, seed=ctx.seed,
        device=ctx.device, backbone=Path(ctx.backbone), init_paths=list(spec.init_paths), tracking=ctx.tracking,
        unit=ctx.name)
    spec.configure(cfg, preset, dataset, arch)
    if preset.get("test_images") is not None:
        limit_test_set(cfg, preset["test_images"], Path(ctx.workdir), spec.task)
    mmconfig.apply_options(cfg, preset.get("cfg_options") or {}, spec.task)
    mmconfig.check_local(cfg)
    return cfg


def limit_test_set(cfg: Any, n: Any, workdir: Path, task: str) -> None:
    """Test on the first ``n`` images of the test set (``test_images`` of a plumbing preset).

    The test dataset gets mmengine's ``indices``; a COCO evaluator, which scores against
    its annotation file, gets that file cut to the same images (written to ``workdir``).
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"{task}: test_images must be a positive integer, got {n!r}")
    for ds in mmconfig.leaf_datasets(cfg.test_dataloader.dataset):
        ds.indices = n
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, Mapping) and "ann_file" in evaluator:
        src = Path(evaluator["ann_file"])
        ann = json.loads(src.read_text())
        images = ann["images"][:n]
        keep = {im["id"] for im in images}
        ann = {**ann, "images": images, "annotations": [a for a in ann["annotations"] if a["image_id"] in keep]}
        dst = workdir / f"{src.stem}.first{n}.json"
        atomic_write_text(dst, json.dumps(ann))
        evaluator["ann_file"] = str(dst)


def run_dense(ctx: TaskContext, spec: DenseTask) -> TaskResult:
    """Check the backbone file and the dataset, then train and test with mmengine."""
    from harness.tasks.mm.backbone import read_backbone

    preset = ctx.cfg
    arch = str(mmconfig.require(preset, "arch", spec.task))
    meta_arch = (ctx.backbone_meta or {}).get("arch")
    if meta_arch and meta_arch != arch:
        raise CheckpointError(f"{ctx.backbone}: backbone is {meta_arch}, task {spec.task} preset expects {arch}")
    state = read_backbone(Path(ctx.backbone), arch)
    dataset = spec.check_data(Path(ctx.data_root))
    cfg = build_config(ctx, spec, dataset)
    _init_cpu_process_group(ctx.device)

    from mmengine.runner import Runner

    import harness.pretrain.trackers  # noqa: F401 - registers the W&B backend that log.backends may name
    from harness.tasks.mm.hooks import BackboneCheckHook, PreciseBNHook, ProgressHook, WeightsOnlyCheckpointHook

    runner = Runner.from_cfg(cfg)
    check = BackboneCheckHook(spec.parts, state, str(ctx.backbone), sha256_file(Path(ctx.backbone)),
                              Path(cfg.work_dir) / BACKBONE_CHECK_FILE)
    runner.register_hook(check)
    runner.register_hook(ProgressHook(ctx.progress))
    runner.register_hook(WeightsOnlyCheckpointHook())
    precise_bn = preset.get("precise_bn_iters", 0)
    if not isinstance(precise_bn, int) or isinstance(precise_bn, bool) or precise_bn < 0:
        raise ConfigError(f"{spec.task}: precise_bn_iters must be a count >= 0, got {precise_bn!r}")
    if precise_bn > 0:
        runner.register_hook(PreciseBNHook(precise_bn))
    started = time.monotonic()
    runner.train()
    trained = time.monotonic()
    raw = runner.test()
    tested = time.monotonic()
    metrics, undefined = spec.read_metrics(raw)
    return TaskResult(
        metrics=metrics,
        higher_is_better={name: True for name in metrics},
        dataset=dataset.record(),
        framework={
            "name": spec.framework,
            "versions": versions(),
            "config": str(preset["config"]),
            "config_sha256": hashlib.sha256((paths.protocol_file(str(preset["config"]))).read_bytes()).hexdigest(),
        },
        extra={
            "arch": arch,
            "iters": int(preset["iters"]),
            "start_iter": check.start_iter,
            "backbone_verified": check.checked,
            "undefined_metrics": undefined,
            "test_images": preset.get("test_images"),
            "precise_bn_iters": precise_bn,
            "train_s": round(trained - started, 1),
            "test_s": round(tested - trained, 1),
            **({"dev": _dev_measures(runner, int(preset["batch_size"]))} if ctx.dev_run else {}),
            "work_dir": str(Path(ctx.workdir) / WORK_SUBDIR),
        },
    )


def _dev_measures(runner: Any, batch: int) -> dict[str, float]:
    """A fast dev run's step times, data wait and memory, from mmengine's message hub."""
    from harness.core.dev_run import stage_report

    def history(name: str) -> list[float]:
        buf = runner.message_hub.log_scalars.get(name)
        return [float(v) for v in buf.data[0]] if buf is not None else []

    return stage_report(history("train/time"), history("train/data_time"), batch, 0)


def versions() -> dict[str, str]:
    """Installed versions of the OpenMMLab stack and torch."""
    out = {}
    for name in VERSION_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _init_cpu_process_group(device: str) -> None:
    """Under torchrun on CPU, start the gloo group before mmengine would try CUDA."""
    if mmconfig.world_size() == 1 or device == "cuda":
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo", timeout=dist_timeout())
