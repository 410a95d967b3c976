"""Pieces shared by the frozen-feature classification tasks."""
from __future__ import annotations

import hashlib
from typing import Any

import torch

from harness.api import TaskContext
from harness.tasks.features import FeatureExtractor, ImageSet, TransformSpec, set_size


def framework() -> dict[str, Any]:
    import torchvision

    return {"name": "torch", "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__}}


def extractor(ctx: TaskContext) -> FeatureExtractor:
    """The feature extractor of the task's backbone, with the preset's transform and cache."""
    return FeatureExtractor.for_backbone(ctx.backbone, TransformSpec.from_cfg(ctx.cfg), ctx.cfg, ctx.device)


def dev_subset(ds: ImageSet, dev: dict[str, int] | None) -> ImageSet:
    """A fast dev run's share of a classification set (at most K images, two per class);
    the set itself otherwise."""
    from harness.core.dev_run import limit_images

    if not dev:
        return ds
    labels = [label for _, label in ds.samples] if hasattr(ds, "samples") else [int(y) for y in ds.labels]
    keep = limit_images(labels, dev, labels)
    return ds if len(keep) == len(labels) else ds.subset(keep)


def probe_splits_of(ctx: TaskContext) -> Any:
    """The probe splits of the task's ``dataset`` (in a fast dev run: built from and cut to
    its share of the images)."""
    from harness.data.registry import load_probe_splits

    cfg = {**ctx.cfg, "dev_run": ctx.dev_run} if ctx.dev_run else ctx.cfg
    return dev_splits(load_probe_splits(ctx.cfg.get("dataset", "coco_crop"), ctx.data_root, cfg), ctx.dev_run)


def dev_splits(splits: Any, dev: dict[str, int] | None) -> Any:
    """:func:`dev_subset` of each split of a :class:`~harness.data.registry.ProbeSplits`."""
    import dataclasses

    if not dev:
        return splits
    return dataclasses.replace(splits, train=dev_subset(splits.train, dev), test=dev_subset(splits.test, dev),
                               val=None if splits.val is None else dev_subset(splits.val, dev))


def fingerprints(sets: dict[str, ImageSet]) -> dict[str, str]:
    return {name: ds.fingerprint() for name, ds in sets.items()}


def combined_fingerprint(parts: dict[str, str]) -> str:
    """One sha256 over named fingerprints (sorted by name)."""
    h = hashlib.sha256()
    for name in sorted(parts):
        h.update(f"{name}\t{parts[name]}\n".encode())
    return h.hexdigest()


def dataset_record(name: str, sets: dict[str, ImageSet], prints: dict[str, str] | None = None
                   ) -> dict[str, Any]:
    """The ``TaskResult.dataset`` entry: name, one fingerprint, per-split sizes and fingerprints."""
    prints = prints or fingerprints(sets)
    return {"name": name, "fingerprint": combined_fingerprint(prints),
            "sizes": {k: set_size(ds) for k, ds in sets.items()}, "fingerprints": prints}
