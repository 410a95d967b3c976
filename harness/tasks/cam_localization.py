"""CAM localization: ContraCAM masks and boxes of a pretrained model against ground truth.

For each dataset of the preset (``cub``: CUB-200-2011 ReDO test split, ``flowers``:
Flowers-102 ReDO test = trnid, ``coco``: COCO val2017 class-agnostic, the union of the
instance masks), every image is resized to ``image_size`` square (no crop) and its
ContraCAM mask computed in batches of ``batch_size`` (the negatives, in reader order)
with ``iterations`` refinement steps.

- **mask mIoU**: the soft mask, optionally refined by the dense CRF (``crf``), with
  connected components of at most ``min_component`` of the image removed, binarised at
  ``mask_threshold`` (0.5); the ground-truth mask resized bilinearly to ``image_size``
  and binarised at 0.5; per-image IoU (1 when both are empty), averaged.
- **box recall@``box_iou``**: boxes extracted from the cleaned mask (threshold 0.5 x max,
  one box per outer contour, boxes > 1% of the image, ``box_margin`` expansion); a ground
  truth box is found when some predicted box overlaps it with IoU >= ``box_iou``. Ground
  truth boxes: the bounding rectangle of the foreground (CUB, Flowers: one object per
  image); on COCO every non-crowd instance whose area exceeds ``gt_min_area`` of the image
  (our choice: a CAM cannot single out tiny objects).

Options that follow the official code (alinlab/object-aware-contrastive), which produced
the published numbers, and are the ``paper`` preset's: ``order: official`` (the images
shuffled with ``numpy.random.RandomState(42)`` before batching, as its segmentation
datasets do; otherwise reader order), ``numerator: official`` (its CAM score, see
:mod:`harness.cam.contrastive`), ``binarize: official`` (the cleaned mask's 8-bit support
is the prediction, as its ``clean_mask``; otherwise the soft mask is thresholded at
``mask_threshold``).

The task needs the projection head: it reads ``heads.pth`` (+ ``heads.json``) from the
folder of the backbone file (``ctx.backbone``) and fails with a clear error when absent.
Config keys: ``datasets``, ``image_size``, ``batch_size``, ``iterations``,
``expand_res``, ``crf``, ``mask_threshold``, ``min_component``, ``box_margin``,
``box_iou``, ``gt_min_area``, ``max_images`` (per dataset, first N; null = all),
``order``, ``numerator``, ``binarize``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.results import samples
from harness.api import Task, TaskContext, TaskResult
from harness.core.errors import CheckpointError, ConfigError, DataError
from harness.core.config_section import checked_section, field_names
from harness.data.image_sets import DetectionImage

DATASETS = ("cub", "flowers", "coco")
ORDERS = ("reader", "official")
OFFICIAL_SEED = 42  # the official segmentation datasets shuffle their ids with RandomState(42)


@dataclass(frozen=True)
class LocalizationConfig:
    datasets: tuple[str, ...] = DATASETS
    image_size: int = 224
    batch_size: int = 256
    iterations: int = 10
    expand_res: int = 2
    crf: bool = True
    mask_threshold: float = 0.5
    min_component: float = 0.001
    box_margin: float = 0.0
    box_iou: float = 0.5
    gt_min_area: float = 0.01
    max_images: int | None = None
    order: str = "reader"
    numerator: str = "paper"
    binarize: str = "soft"

    @classmethod
    def from_cfg(cls, d: dict[str, Any]) -> "LocalizationConfig":
        d = checked_section(d, field_names(cls), "cam_localization config")
        if "datasets" in d:
            d["datasets"] = tuple([d["datasets"]] if isinstance(d["datasets"], str) else d["datasets"])
            bad = set(d["datasets"]) - set(DATASETS)
            if bad or not d["datasets"]:
                raise ConfigError(f"cam_localization: datasets must be a non-empty subset of {DATASETS}, "
                                  f"got {list(d['datasets'])}")
        from harness.cam.boxes import BINARIZE
        from harness.cam.contrastive import NUMERATORS

        cfg = cls(**d)
        for key, allowed in (("order", ORDERS), ("numerator", NUMERATORS), ("binarize", BINARIZE)):
            if getattr(cfg, key) not in allowed:
                raise ConfigError(f"cam_localization: {key} must be one of {allowed}, got {getattr(cfg, key)!r}")
        return cfg


@dataclass
class GroundTruth:
    """One evaluation image: its file, a boolean mask at its own size, and normalised
    ``xyxy`` ground-truth boxes."""

    image: Path
    mask: np.ndarray
    boxes: list[tuple[float, float, float, float]]


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two boolean maps; 1 when both are empty."""
    union = np.logical_or(pred, gt).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, gt).sum() / union)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``xyxy`` boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def found_boxes(gt: Sequence[Sequence[float]], pred: Sequence[Sequence[float]], threshold: float) -> int:
    """How many ground-truth boxes some predicted box overlaps with IoU >= ``threshold``."""
    return sum(any(box_iou(g, p) >= threshold for p in pred) for g in gt)


def resize_binary(mask: np.ndarray, size: int) -> np.ndarray:
    """A boolean map resized bilinearly to ``size`` square and binarised at 0.5."""
    from PIL import Image

    im = Image.fromarray(mask.astype(np.uint8) * 255, mode="L").resize((size, size), Image.BILINEAR)
    return np.asarray(im) > 127


def foreground_box(mask: np.ndarray) -> list[tuple[float, float, float, float]]:
    """The normalised bounding rectangle of a boolean mask (none if empty)."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if rows.size == 0:
        return []
    h, w = mask.shape
    return [(cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h)]


def mask_set_truth(mask_set: Any) -> list[GroundTruth]:
    """Ground truth of a CUB / Flowers ``MaskSet``."""
    from harness.data.masks import load_foreground_mask

    out = []
    for image, mask_file in mask_set.samples:
        mask = load_foreground_mask(mask_file, mask_set.mask_format)
        out.append(GroundTruth(image, mask, foreground_box(mask)))
    return out


def object_boxes(image: DetectionImage, min_area: float) -> list[tuple[float, float, float, float]]:
    """Normalised ``xyxy`` boxes of the image's non-crowd objects larger than ``min_area`` of it."""
    h, w = image.height, image.width
    out = []
    for obj in image.objects:
        area = obj.area if obj.area is not None else obj.bbox[2] * obj.bbox[3]
        if not obj.iscrowd and area > min_area * h * w:
            x, y, bw, bh = obj.bbox
            out.append((x / w, y / h, (x + bw) / w, (y + bh) / h))
    return out


def coco_truth(data_root: Path, gt_min_area: float, limit: int | None) -> list[GroundTruth]:
    """COCO val2017: union of all instance masks; boxes of non-crowd instances > ``gt_min_area``."""
    try:
        from pycocotools import mask as mask_utils
    except ImportError as exc:
        raise ConfigError("cam_localization on COCO needs pycocotools") from exc
    from harness.data.coco import read_coco

    coco = read_coco(data_root, "val")
    out = []
    for image in coco.images[:limit]:
        h, w = image.height, image.width
        union = np.zeros((h, w), dtype=bool)
        for obj in image.objects:
            seg = obj.segmentation
            if isinstance(seg, list):
                rles = mask_utils.frPyObjects(seg, h, w)
                rle = mask_utils.merge(rles)
            elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
                rle = mask_utils.frPyObjects(seg, h, w)
            else:
                rle = seg
            union |= mask_utils.decode(rle).astype(bool)
        out.append(GroundTruth(image.path, union, object_boxes(image, gt_min_area)))
    return out


def load_truth(name: str, data_root: Path, cfg: LocalizationConfig) -> list[GroundTruth]:
    from harness.data.cub import read_cub_localization
    from harness.data.flowers import read_flowers_localization

    if name == "coco":
        items = coco_truth(data_root, cfg.gt_min_area, cfg.max_images)
    else:
        reader = read_cub_localization if name == "cub" else read_flowers_localization
        mask_set = reader(data_root, "test")
        if cfg.max_images is not None:
            mask_set = type(mask_set)(mask_set.name, mask_set.root, mask_set.samples[:cfg.max_images],
                                      mask_set.mask_format)
        items = mask_set_truth(mask_set)
    if not items:
        raise DataError(f"cam_localization: the {name} test set under {data_root} has no images")
    if cfg.order == "official":
        order = np.arange(len(items))
        np.random.RandomState(OFFICIAL_SEED).shuffle(order)
        items = [items[i] for i in order]
    return items


def fingerprint(items: list[GroundTruth]) -> str:
    """sha256 over (file name, size) of every image and its ground-truth mask."""
    h = hashlib.sha256()
    for it in items:
        h.update(f"{it.image.name}\t{it.image.stat().st_size}\t".encode())
        h.update(np.packbits(it.mask).tobytes())
    return h.hexdigest()


def evaluate(model: Any, items: list[GroundTruth], cfg: LocalizationConfig, device: str,
             progress: Any = None) -> dict[str, Any]:
    """Mask mIoU and box recall (percentages) of ContraCAM on ``items``, and the per-image
    ``iou``, ``found`` and ``boxes`` they are computed from."""
    from harness.cam.boxes import dense_crf, keep_large_components, mask_to_boxes
    from harness.cam.infer import cam_batches

    ious, found, total = [], [], []
    paths = [it.image for it in items]
    for batch in cam_batches(model, paths, cfg.image_size, cfg.batch_size, cfg.iterations, device):
        for j, (soft, image) in enumerate(zip(batch.masks, batch.images)):
            truth = items[batch.start + j]
            if cfg.crf:
                soft = dense_crf(image, soft)
            soft = keep_large_components(soft, cfg.min_component)
            if cfg.binarize == "official":
                soft = (soft > 0).astype(np.float32)
            ious.append(mask_iou(soft > cfg.mask_threshold, resize_binary(truth.mask, cfg.image_size)))
            pred = mask_to_boxes(soft, margin=cfg.box_margin)
            found.append(found_boxes(truth.boxes, pred, cfg.box_iou))
            total.append(len(truth.boxes))
        if progress:
            progress(batch.start + len(batch.masks), len(items))
    return {"mask_miou": 100.0 * float(np.mean(ious)),
            "box_recall": 100.0 * sum(found) / sum(total) if sum(total) else float("nan"),
            "iou": np.asarray(ious, np.float64), "found": np.asarray(found, np.int64),
            "boxes": np.asarray(total, np.int64)}


def _require_crf(cfg: LocalizationConfig) -> None:
    """A config with ``crf: true`` needs pydensecrf."""
    from harness.cam.boxes import crf_available

    if cfg.crf and not crf_available():
        raise ConfigError("cam_localization: crf is on but pydensecrf is not installed "
                          "(`pip install pydensecrf2`, or set crf: false)")


class CamLocalization(Task):
    """ContraCAM mask mIoU and box recall on CUB / Flowers / COCO val."""

    def preflight(self, ctx: TaskContext) -> list[str]:
        """The config parses, and the planned backbone comes with its projection head."""
        cfg = LocalizationConfig.from_cfg(dict(ctx.cfg))
        if ctx.backbone_meta.get("heads") is False:
            raise CheckpointError(f"{ctx.name}: ContraCAM needs the projection head, and the backbone this run "
                                  "exports has none (the imported checkpoint holds no projector); leave the task "
                                  f"out with --skip {ctx.name}")
        _require_crf(cfg)
        return []

    def run(self, ctx: TaskContext) -> TaskResult:
        import torch
        import torchvision

        from harness.cam.infer import load_cam_model

        cfg = LocalizationConfig.from_cfg(dict(ctx.cfg))
        _require_crf(cfg)
        model = load_cam_model(Path(ctx.backbone), cfg.expand_res, ctx.device, cfg.numerator)
        metrics: dict[str, float] = {}
        groups: dict[str, samples.Group] = {}
        specs: dict[str, dict[str, Any]] = {}
        record: dict[str, Any] = {"name": "+".join(cfg.datasets), "sizes": {}, "fingerprints": {}}
        for name in cfg.datasets:
            items = load_truth(name, ctx.data_root, cfg)
            scores = evaluate(model, items, cfg, ctx.device,
                              lambda step, total, name=name: ctx.progress(step, total, phase=name))
            recall = f"{name}_box_recall{int(round(cfg.box_iou * 100))}"
            metrics[f"{name}_mask_miou"] = scores["mask_miou"]
            metrics[recall] = scores["box_recall"]
            groups[name] = samples.Group([item_id(it.image, ctx.data_root) for it in items],
                                         {k: scores[k] for k in ("iou", "found", "boxes")})
            specs[f"{name}_mask_miou"] = {"kind": "mean", "group": name, "array": "iou", "scale": 100.0}
            if scores["boxes"].sum():
                specs[recall] = {"kind": "ratio", "group": name, "num": "found", "den": "boxes"}
            record["sizes"][name] = len(items)
            record["fingerprints"][name] = fingerprint(items)
        record["fingerprint"] = hashlib.sha256(
            "".join(f"{k}:{v}" for k, v in sorted(record["fingerprints"].items())).encode()).hexdigest()
        return TaskResult(metrics=metrics, higher_is_better={k: True for k in metrics}, dataset=record,
                          framework={"name": "torch", "versions": {"torch": torch.__version__,
                                                                   "torchvision": torchvision.__version__}},
                          extra={"cam": {"image_size": cfg.image_size, "batch_size": cfg.batch_size,
                                         "iterations": cfg.iterations, "expand_res": cfg.expand_res,
                                         "crf": cfg.crf, "order": cfg.order, "numerator": cfg.numerator,
                                         "binarize": cfg.binarize}}, samples=samples.SampleTable(groups, specs))


def item_id(path: Path, data_root: Path) -> str:
    """An image's path relative to the data root (absolute when outside it)."""
    path, root = Path(path), Path(data_root)
    return str(path.relative_to(root) if path.is_relative_to(root) else path)
