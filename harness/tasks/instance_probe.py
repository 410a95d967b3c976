"""Instance classification from box-pooled frozen features: what a detector's RoI head
reads, without training the backbone.

Each image is resized to ``short_side`` and run through the frozen backbone (a ResNet's
stages or a ViT's patch tokens, :mod:`harness.tasks.dense_features`); every
ground-truth object (non-crowd, area at least ``min_area`` of the image, VOC
``difficult`` objects left out) is pooled from each of the ``levels`` stage outputs with
an aligned RoIAlign of ``roi_size`` x ``roi_size`` bins, averaged; the levels'
vectors are concatenated. Features come from the whole scene, so context enters them as
it enters a detector's. The vectors, standardised with the training objects' mean and
std, are linear-probed (L2 penalty chosen on a seeded ``val_size`` share of
the training objects, refit) and the test objects classified. Datasets: ``coco``
(train2017 -> val2017) and ``voc`` (VOC2007 trainval -> test). Top-1 and mean
per-class accuracy over objects, with per-object correctness kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.core.dev_run import thin
from harness.results import samples
from harness.api import Task, TaskContext, TaskResult
from harness.data.coco import read_coco
from harness.data.image_sets import DetectionSet
from harness.data.voc import read_voc_det
from harness.core.errors import DataError
from harness.tasks import cls_common, dense_features, logreg
from harness.tasks.features import Features
from harness.tasks.probe import probe_with_seeded_val

DATASETS = ("coco", "voc")


@dataclass(frozen=True)
class InstanceProbeConfig(dense_features.DenseProbeConfig):
    roi_size: int
    min_area: float
    batch_size: int

    @classmethod
    def from_cfg(cls, d: dict[str, Any]) -> "InstanceProbeConfig":
        return dense_features.probe_config(cls, d, "instance_probe", DATASETS)


def load_sets(name: str, data_root: Path) -> tuple[DetectionSet, DetectionSet]:
    if name == "coco":
        return read_coco(data_root, "train2017"), read_coco(data_root, "val2017")
    return read_voc_det(data_root, 2007, "trainval"), read_voc_det(data_root, 2007, "test")


def objects_of(ds: DetectionSet, min_area: float) -> list[tuple[int, int, tuple[float, float, float, float], str]]:
    """(image index, category index, xyxy box, object id) of every object the probe uses."""
    cat_index = {c["id"]: k for k, c in enumerate(ds.categories)}
    out = []
    for i, img in enumerate(ds.images):
        for j, obj in enumerate(img.objects):
            x, y, w, h = obj.bbox
            if obj.iscrowd or obj.difficult or w <= 0 or h <= 0:
                continue
            if w * h < min_area * img.width * img.height:
                continue
            if obj.category_id not in cat_index:
                raise DataError(f"{ds.ann_file or ds.root}: object of image {img.image_id} has category "
                                f"{obj.category_id!r}, which is not in the category list")
            out.append((i, cat_index[obj.category_id], (x, y, x + w, y + h), f"{img.image_id}/{j}"))
    if not out:
        raise DataError(f"{ds.ann_file or ds.root}: no object of at least {min_area:g} of its image in {ds.name}")
    return out


@torch.no_grad()
def roi_vectors(net: torch.nn.Module, ds: DetectionSet, objs: list, cfg: InstanceProbeConfig, device: str
                ) -> torch.Tensor:
    """Every object's box-pooled vector, in ``objs`` order: for each level, the mean of a
    ``roi_size`` x ``roi_size`` RoIAlign of the box; the levels concatenated."""
    from torchvision.ops import roi_align

    by_image: dict[int, list[int]] = {}
    for k, (i, _, _, _) in enumerate(objs):
        by_image.setdefault(i, []).append(k)
    images = sorted(by_image)
    rows: list[torch.Tensor] = [torch.empty(0)] * len(objs)
    for idx, x, sizes in dense_features.image_batches([ds.images[i].path for i in images], cfg.short_side,
                                                      cfg.batch_size):
        maps = dense_features.feature_maps(net, x.to(device), cfg.levels)
        ks, rois = [], []
        for b, (j, (w, _)) in enumerate(zip(idx, sizes)):
            scale = x.shape[-1] / w
            for k in by_image[images[j]]:
                ks.append(k)
                rois.append([float(b)] + [v * scale for v in objs[k][2]])
        boxes = torch.tensor(rois, device=device)
        parts = [roi_align(maps[lv].float(), boxes, output_size=(cfg.roi_size, cfg.roi_size),
                           spatial_scale=1 / dense_features.level_stride(net, lv), sampling_ratio=-1,
                           aligned=True).mean(dim=(2, 3))
                 for lv in cfg.levels]
        for k, v in zip(ks, torch.cat(parts, dim=1).cpu()):
            rows[k] = v
    return torch.stack(rows)


class InstanceProbe(Task):
    """Top-1 over objects of a linear probe on box-pooled frozen features."""

    def run(self, ctx: TaskContext) -> TaskResult:
        from harness.core.checkpoints import load_backbone

        cfg = InstanceProbeConfig.from_cfg(dict(ctx.cfg))
        train, test = (thin(ds, "images", ctx.dev_run) for ds in load_sets(cfg.dataset, ctx.data_root))
        if [c["id"] for c in train.categories] != [c["id"] for c in test.categories]:
            raise DataError(f"{test.ann_file or test.root}: categories differ from those of {train.name}")
        net = load_backbone(ctx.backbone).to(ctx.device).eval()
        tr_objs, te_objs = objects_of(train, cfg.min_area), objects_of(test, cfg.min_area)
        x_tr = roi_vectors(net, train, tr_objs, cfg, ctx.device)
        ctx.progress(1, 3, phase="train objects")
        x_te = roi_vectors(net, test, te_objs, cfg, ctx.device)
        ctx.progress(2, 3, phase="test objects")
        y_tr = torch.tensor([o[1] for o in tr_objs])
        y_te = torch.tensor([o[1] for o in te_objs])
        n_classes = len(train.categories)
        mean, std = x_tr.mean(0), x_tr.std(0).clamp_min(1e-6)  # standardised with the training objects
        probe = probe_with_seeded_val(Features((x_tr - mean) / std, y_tr), n_classes, dict(ctx.cfg), ctx.device)
        pred = probe.predict(Features((x_te - mean) / std, y_te))
        metrics = {m: logreg.score(pred, y_te, m) for m in ("top1", "mean_per_class")}
        table = samples.SampleTable({"test": samples.accuracy_group([o[3] for o in te_objs], pred.numpy(), y_te.numpy())},
                                    {m: samples.accuracy_spec(m, "test") for m in metrics})
        ctx.progress(3, 3, phase="probe")
        prints = {"train": _fingerprint(train, tr_objs), "test": _fingerprint(test, te_objs)}
        return TaskResult(metrics=metrics, higher_is_better={m: True for m in metrics},
                          dataset={"name": f"{cfg.dataset} instances", "sizes": {"train": len(tr_objs),
                                                                                  "test": len(te_objs)},
                                   "fingerprints": prints, "fingerprint": cls_common.combined_fingerprint(prints)},
                          framework=cls_common.framework(), extra=probe.summary(), samples=table)


def _fingerprint(ds: DetectionSet, objs: list) -> str:
    import hashlib

    h = hashlib.sha256(ds.name.encode())
    for i, k, box, oid in objs:
        img = ds.images[i]
        h.update(f"{img.path.name}\t{img.path.stat().st_size}\t{k}\t{oid}\t{box}\n".encode())
    return h.hexdigest()
