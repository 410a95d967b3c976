"""Semantic segmentation with a linear head on frozen backbone features.

The backbone stays frozen (eval mode). Each image is resized to ``short_side``; the
outputs of the ``levels`` stages (a ViT: its patch tokens, :mod:`harness.tasks.dense_features`)
are bilinearly resampled to the stride-``stride`` grid
and concatenated. A cell's training label is the majority label of its pixels (cells
with more than half ignored pixels are left out); ``max_cells`` valid cells per training
image are drawn (seeded by ``split_seed``) to bound the cost. A multinomial logistic
regression (:mod:`harness.tasks.logreg`) is fitted on them, its L2 penalty chosen on the
cells of a seeded ``val_size`` share of the training images, then refitted on all (on
features standardised with the training cells' mean and std; classes no training cell
has are never predicted). At
test time the head's logits are upsampled bilinearly to the label resolution; mIoU,
mAcc and aAcc follow mmseg's IoUMetric (per-class sums over the whole split; classes
absent from both prediction and ground truth left out of the mean).

Datasets: ``voc`` (VOC2012 train + SBD aug -> val, 21 classes, 255 ignored) and
``ade20k`` (training -> validation, 150 classes, label 0 ignored).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from harness.core.dev_run import thin
from harness.results import samples
from harness.api import Task, TaskContext, TaskResult
from harness.data.ade20k import read_ade20k
from harness.data.image_sets import SegmentationSet
from harness.data.voc import read_voc12aug_train, read_voc_seg
from harness.core.errors import DataError
from harness.tasks import cls_common, dense_features, logreg
from harness.tasks.probe import ProbeConfig, split_indices

DATASETS = ("voc", "ade20k")


@dataclass(frozen=True)
class SegProbeConfig(dense_features.DenseProbeConfig):
    stride: int
    max_cells: int

    @classmethod
    def from_cfg(cls, d: dict[str, Any]) -> "SegProbeConfig":
        return dense_features.probe_config(cls, d, "seg_probe", DATASETS)


def load_sets(name: str, data_root: Path) -> tuple[SegmentationSet, SegmentationSet]:
    if name == "voc":
        return read_voc12aug_train(data_root), read_voc_seg(data_root, "val", aug=False)
    return read_ade20k(data_root, "training"), read_ade20k(data_root, "validation")


def read_label(path: Path, ds: SegmentationSet) -> np.ndarray:
    """Label map as int64 with ``-1`` = ignored (reduce_zero_label applied)."""
    try:
        with Image.open(path) as im:
            lab = np.asarray(im, dtype=np.int64)
    except OSError as exc:
        raise DataError(f"{path}: cannot read label map ({exc})") from exc
    if lab.ndim != 2:
        raise DataError(f"{path}: expected a single-channel label map, got shape {lab.shape}")
    lab = np.where(lab == ds.ignore_index, -1, lab)
    if ds.reduce_zero_label:
        lab = np.where(lab == 0, -1, lab - 1)
    bad = (lab >= len(ds.classes))
    if bad.any():
        raise DataError(f"{path}: label value {int(lab[bad].max())} is not a class of {ds.name} "
                        f"({len(ds.classes)} classes)")
    return lab


def cell_labels(lab: np.ndarray, size: tuple[int, int], grid: tuple[int, int], n_classes: int) -> np.ndarray:
    """Majority label of each grid cell of the label map resized (nearest) to ``size``; -1
    where more than half of the cell is ignored."""
    t = torch.from_numpy(lab)[None, None].float()
    t = F.interpolate(t, size=size, mode="nearest")[0, 0].long()
    onehot = torch.zeros(n_classes + 1, *size)
    onehot.scatter_(0, (t + 1).clamp(min=0)[None], 1.0)  # channel 0 = ignored
    frac = F.adaptive_avg_pool2d(onehot[None], grid)[0]  # (K+1, gh, gw)
    label = frac[1:].argmax(0)
    return torch.where(frac[0] > 0.5, torch.full_like(label, -1), label).numpy()


class SegProbe(Task):
    """mIoU of a linear head on frozen features (VOC or ADE20K)."""

    def run(self, ctx: TaskContext) -> TaskResult:
        from harness.core.checkpoints import load_backbone

        cfg = SegProbeConfig.from_cfg(dict(ctx.cfg))
        train, test = (thin(ds, "samples", ctx.dev_run) for ds in load_sets(cfg.dataset, ctx.data_root))
        n_classes = len(train.classes)
        net = load_backbone(ctx.backbone).to(ctx.device).eval()
        x, y, owner = self._train_cells(net, train, cfg, ctx.device)
        ctx.progress(1, 3, phase="train features")
        head, sweep = self._fit(x, y, owner, n_classes, cfg, ctx)
        ctx.progress(2, 3, phase="probe")
        inter, union, gt = self._evaluate(net, head, test, cfg, n_classes, ctx.device)
        ctx.progress(3, 3, phase="test")
        group = samples.Group([str(p.relative_to(test.root)) for p, _ in test.samples],
                              {"inter": inter, "union": union, "gt": gt,
                               "correct": inter.sum(axis=1), "valid": gt.sum(axis=1)})
        table = samples.SampleTable({"test": group}, {
            "mIoU": {"kind": "iou", "group": "test", "inter": "inter", "union": "union"},
            "mAcc": {"kind": "iou", "group": "test", "inter": "inter", "union": "gt"},
            "aAcc": {"kind": "ratio", "group": "test", "num": "correct", "den": "valid"}})
        metrics = {m: table.value(m) for m in table.metrics}
        prints = {"train": _fingerprint(train), "test": _fingerprint(test)}
        return TaskResult(
            metrics=metrics, higher_is_better={m: True for m in metrics},
            dataset={"name": f"{cfg.dataset} segmentation", "fingerprint": cls_common.combined_fingerprint(prints),
                     "sizes": {"train": len(train.samples), "test": len(test.samples), "train_cells": int(len(y))},
                     "fingerprints": prints},
            framework=cls_common.framework(),
            extra={"best_l2": sweep.best_l2, "val_scores": sweep.val_scores, "l2_grid": sweep.l2_grid,
                   "feature_dim": int(x.shape[1])}, samples=table)

    def _train_cells(self, net: torch.nn.Module, ds: SegmentationSet, cfg: SegProbeConfig, device: str
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features, labels and owning image index of the sampled training cells."""
        n_classes = len(ds.classes)
        xs, ys, owners = [], [], []
        for i, (img_path, lab_path) in enumerate(ds.samples):
            im = dense_features.load_rgb(img_path)
            inp = dense_features.to_tensor(im, cfg.short_side)[None].to(device)
            size = tuple(inp.shape[-2:])
            grid = (-(-size[0] // cfg.stride), -(-size[1] // cfg.stride))
            feats = dense_features.grid_features(dense_features.feature_maps(net, inp, cfg.levels), grid)[0]
            lab = cell_labels(read_label(lab_path, ds), size, grid, n_classes)
            valid = np.flatnonzero(lab.reshape(-1) >= 0)
            if valid.size == 0:
                continue
            rng = np.random.default_rng([cfg.split_seed, i])
            pick = rng.choice(valid, size=min(cfg.max_cells, valid.size), replace=False)
            flat = feats.reshape(feats.shape[0], -1).T
            xs.append(flat[torch.from_numpy(pick).to(flat.device)].cpu())
            ys.append(torch.from_numpy(lab.reshape(-1)[pick]))
            owners.append(torch.full((pick.size,), i, dtype=torch.long))
        if not xs:
            raise DataError(f"{ds.root}: no training cell with a valid label in {ds.name}")
        return torch.cat(xs), torch.cat(ys), torch.cat(owners)

    def _fit(self, x: torch.Tensor, y: torch.Tensor, owner: torch.Tensor, n_classes: int, cfg: SegProbeConfig,
             ctx: TaskContext) -> tuple[logreg.LinearHead, logreg.SweepResult]:
        """Standardise the features (training-cell statistics), sweep the penalty with whole
        training images held out, refit on every cell. Classes no training cell has are
        never predicted (their logit is -inf); the head is fitted over the others."""
        present = y.unique()
        index = torch.full((n_classes,), -1, dtype=torch.long)
        index[present] = torch.arange(len(present))
        mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
        images = owner.unique()
        _, va_img = split_indices(len(images), cfg.val_size, cfg.split_seed)
        is_val = torch.isin(owner, images[va_img])
        pcfg = ProbeConfig.from_cfg({"l2_grid": cfg.l2_grid, "max_iter": cfg.max_iter, "tol": cfg.tol})
        xd, yd = ((x - mean) / std).to(ctx.device), index[y].to(ctx.device)
        k = len(present)
        sweep = logreg.sweep(xd[~is_val], yd[~is_val], xd[is_val], yd[is_val], k, pcfg.grid,
                             max_iter=cfg.max_iter, tol=cfg.tol)
        fitted, _ = logreg.fit(xd, yd, k, sweep.best_l2, init=sweep.head, max_iter=cfg.max_iter, tol=cfg.tol)
        # fold the standardisation into the head and give absent classes -inf logits
        weight = torch.zeros(n_classes, x.shape[1], dtype=fitted.weight.dtype)
        bias = torch.full((n_classes,), float("-inf"), dtype=fitted.bias.dtype)
        w = fitted.weight.cpu() / std.to(fitted.weight.dtype)
        weight[present] = w
        bias[present] = fitted.bias.cpu() - w @ mean.to(w.dtype)
        return logreg.LinearHead(weight.to(ctx.device), bias.to(ctx.device)), sweep

    @torch.no_grad()
    def _evaluate(self, net: torch.nn.Module, head: logreg.LinearHead, ds: SegmentationSet, cfg: SegProbeConfig,
                  n_classes: int, device: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per test image and class: intersection, union and ground-truth pixels."""
        inter = np.zeros((len(ds.samples), n_classes), np.int64)
        union, gt = np.zeros_like(inter), np.zeros_like(inter)
        for i, (img_path, lab_path) in enumerate(ds.samples):
            lab = torch.from_numpy(read_label(lab_path, ds))
            inp = dense_features.to_tensor(dense_features.load_rgb(img_path), cfg.short_side)[None].to(device)
            size = tuple(inp.shape[-2:])
            grid = (-(-size[0] // cfg.stride), -(-size[1] // cfg.stride))
            feats = dense_features.grid_features(dense_features.feature_maps(net, inp, cfg.levels), grid)[0]
            logits = torch.einsum("kc,chw->khw", head.weight.to(feats.dtype), feats) + head.bias[:, None, None]
            logits = F.interpolate(logits[None].float(), size=tuple(lab.shape), mode="bilinear", align_corners=False)
            pred = logits[0].argmax(0).cpu()
            valid = lab >= 0
            conf = torch.bincount(lab[valid] * n_classes + pred[valid], minlength=n_classes * n_classes)
            conf = conf.reshape(n_classes, n_classes).numpy()  # rows: truth, columns: prediction
            inter[i], gt[i] = np.diag(conf), conf.sum(axis=1)
            union[i] = conf.sum(axis=0) + gt[i] - inter[i]
        return inter, union, gt


def _fingerprint(ds: SegmentationSet) -> str:
    import hashlib

    h = hashlib.sha256(ds.name.encode())
    for img, lab in ds.samples:
        h.update(f"{img.relative_to(ds.root)}\t{img.stat().st_size}\t{lab.relative_to(ds.root)}\t"
                 f"{lab.stat().st_size}\n".encode())
    return h.hexdigest()
