"""Distribution shift: a linear head trained on a clean set, tested on shifted sets whose
classes are projected onto the head's labels (``benchmarks/class_maps/*.json``).

* COCO head (9-way, the SI-Score-9 label space): trained on the COCO-Crop train crops of
  those 9 categories (``data_root/coco_crop``, else built from COCO), clean test = their
  val2017 crops; shifted: SI-Score-9 per factor present (``siscore_9_<factor>``, and
  ``siscore_9`` = the mean over factors) and ObjectNet-9 (``objectnet_9``).
* ImageNet-9 head: trained on ``bg_challenge/original/train``, clean test = original/val;
  shifted: ImageNet-R-9 (``imagenet_r_9``), only when ``<data_root>/<imagenet_r_dir>``
  exists. ``in9_val`` picks its penalty's validation split: ``seeded`` (default, a
  ``val_size`` subset of original/train, as every other probe) or ``original_val``
  (ContraCAM's code: all of original/train to fit, original/val to select, so its clean
  accuracy is the selection split's).

Every shifted accuracy also comes as ``<set>_minus_clean`` (shifted - clean; closer to
zero, i.e. higher, is better). Shifted sets that are absent are skipped; a mapping that
names a class the data lacks is an error naming the mapping file and the class.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.results import samples
from harness.api import Task, TaskContext, TaskResult
from harness.data import layout
from harness.data.bg_challenge import read_bg_challenge
from harness.data.fileio import sub_dirs
from harness.data.folders import read_coco_crop, read_image_folder
from harness.data.objectnet import FRAME_PX, read_objectnet
from harness.data.image_sets import ClassificationSet
from harness.data.siscore import FACTORS, read_siscore
from harness.core.errors import ConfigError, DataError
from harness.tasks import class_maps, cls_common, logreg
from harness.data.object_crops import coco_crop_root
from harness.tasks.features import FeatureExtractor, Features, TransformSpec
from harness.tasks.probe import ProbeConfig, probe_with_seeded_val, train_probe

SISCORE_FACTORS = ("area", "rotation", "location")


def check_targets(mapping: dict[str, Any], available: list[str], root: Path) -> None:
    """Every class a mapping names must exist in the data (``DataError`` otherwise)."""
    have = set(available)
    for label, targets in mapping["targets"].items():
        for t in targets:
            if t not in have:
                raise DataError(f"{mapping['path']}: label {label!r} maps to class {t!r}, which {root} does not "
                                f"have (it has {len(have)} classes, e.g. {sorted(have)[:5]})")


def project(ds: ClassificationSet, mapping: dict[str, Any], name: str) -> ClassificationSet:
    """The images of ``ds`` whose class some label of ``mapping`` takes, relabelled to the
    index of that label in ``mapping['classes']``."""
    check_targets(mapping, ds.classes, ds.root)
    label_of = {t: mapping["classes"].index(label) for label, targets in mapping["targets"].items() for t in targets}
    samples = [(p, label_of[ds.classes[y]]) for p, y in ds.samples if ds.classes[y] in label_of]
    if not samples:
        raise DataError(f"{ds.root}: no image of the classes {mapping['path']} maps")
    return ClassificationSet(name=name, root=ds.root, classes=list(mapping["classes"]), samples=samples)


def restrict(ds: ClassificationSet, classes: list[str], mapping_path: str, name: str) -> ClassificationSet:
    """The images of ``ds`` whose class is in ``classes``, relabelled by position in ``classes``."""
    missing = [c for c in classes if c not in ds.classes]
    if missing:
        raise DataError(f"{mapping_path}: label {missing[0]!r} is not a class of {ds.root} "
                        f"(missing: {', '.join(missing)})")
    index = {c: i for i, c in enumerate(classes)}
    samples = [(p, index[ds.classes[y]]) for p, y in ds.samples if ds.classes[y] in index]
    return ClassificationSet(name=name, root=ds.root, classes=list(classes), samples=samples)


def coco_sets(data_root: Path, cfg: dict[str, Any], progress: Any) -> dict[str, ClassificationSet]:
    """The shifted sets of the COCO head that are present (SI-Score-9 factors, ObjectNet-9)."""
    out: dict[str, ClassificationSet] = {}
    siscore = class_maps.load_class_map(class_maps.SISCORE_9)
    for factor in cfg.get("siscore_factors", SISCORE_FACTORS):
        if factor not in FACTORS:
            raise ConfigError(f"dist_shift: unknown SI-Score factor {factor!r} (known: {', '.join(FACTORS)})")
        if (Path(data_root) / layout.SISCORE / FACTORS[factor]).is_dir():
            out[f"siscore_9_{factor}"] = project(read_siscore(data_root, factor), siscore, f"siscore_9_{factor}")
    image_root = Path(data_root) / layout.OBJECTNET / "images"
    if image_root.is_dir():
        objectnet = class_maps.load_class_map(class_maps.OBJECTNET_9)
        if objectnet["classes"] != siscore["classes"]:
            raise ConfigError(f"{objectnet['path']}: label space differs from {siscore['path']}")
        check_targets(objectnet, sub_dirs(image_root), image_root)
        folders = [t for targets in objectnet["targets"].values() for t in targets]
        out["objectnet_9"] = project(read_objectnet(data_root, folders), objectnet, "objectnet_9")
    return out


def imagenet_r_set(data_root: Path, cfg: dict[str, Any]) -> ClassificationSet | None:
    folder = Path(data_root) / cfg.get("imagenet_r_dir", "imagenet-r")
    if not folder.is_dir():
        return None
    mapping = class_maps.load_class_map(class_maps.IMAGENET_R_9)
    return project(read_image_folder(folder, "imagenet_r"), mapping, "imagenet_r_9")


class ShiftScores:
    """Accuracies of the heads on their clean and shifted sets, with their per-item table."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.groups: dict[str, samples.Group] = {}
        self.specs: dict[str, dict[str, Any]] = {}

    def score(self, name: str, probe: Any, feats: Features, ds: ClassificationSet) -> float:
        pred, truth = probe.predict(feats), feats.y.cpu()
        self.groups[name] = samples.accuracy_group(ds.item_ids(), pred.numpy(), truth.numpy())
        self.specs[name] = samples.accuracy_spec("top1", name)
        return logreg.score(pred, truth, "top1")

    def add_head(self, head_name: str, clean: float, shifted: dict[str, float]) -> None:
        clean_name = f"clean_{head_name}"
        self.metrics[clean_name] = clean
        self.specs[clean_name] = self.specs.pop(f"{head_name}_val")
        self.groups[clean_name] = self.groups.pop(f"{head_name}_val")
        self.specs[clean_name]["group"] = clean_name
        for name, acc in shifted.items():
            self.metrics[name] = acc
            self.metrics[f"{name}_minus_clean"] = acc - clean
            self.specs[f"{name}_minus_clean"] = {"kind": "diff", "a": name, "b": clean_name}

    def table(self) -> samples.SampleTable:
        return samples.SampleTable(self.groups, self.specs)


def evaluate_dist_shift(ex: FeatureExtractor, data_root: Path, cfg: dict[str, Any], device: str,
                        progress: Any = None, dev_run: dict[str, int] | None = None) -> TaskResult:
    spec = TransformSpec.from_cfg(cfg)
    scores = ShiftScores()
    all_sets: dict[str, ClassificationSet] = {}
    prints: dict[str, str] = {}
    summaries: dict[str, Any] = {}

    def features(name: str, ds: ClassificationSet, border: int = 0) -> Features:
        all_sets[name], prints[name] = ds, ds.fingerprint()
        return ex(ds, prints[name], TransformSpec.from_cfg(cfg, border=border) if border else spec)

    def dev(ds: ClassificationSet) -> ClassificationSet:  # a fast dev run's share of a set
        return cls_common.dev_subset(ds, dev_run)

    shifted = {name: dev(ds) for name, ds in coco_sets(data_root, cfg, progress).items()}
    if shifted:
        label_space = class_maps.load_class_map(class_maps.SISCORE_9)
        root = coco_crop_root(data_root, cfg, progress, dev_run)
        train = dev(restrict(read_coco_crop(root, "train"), label_space["classes"], label_space["path"],
                             "coco_crop_9_train"))
        clean = dev(restrict(read_coco_crop(root, "val"), label_space["classes"], label_space["path"],
                             "coco_crop_9_val"))
        probe = probe_with_seeded_val(features("coco_crop_9_train", train), len(train.classes), cfg, device)
        accs = {name: scores.score(name, probe, features(name, ds, FRAME_PX if name == "objectnet_9" else 0), ds)
                for name, ds in shifted.items()}
        factors = [n for n in accs if n.startswith("siscore_9_")]
        if factors:
            accs["siscore_9"] = sum(accs[n] for n in factors) / len(factors)
            scores.specs["siscore_9"] = {"kind": "average", "of": factors}
        clean_acc = scores.score("coco_crop_9_val", probe, features("coco_crop_9_val", clean), clean)
        scores.add_head("coco_crop_9", clean_acc, accs)
        summaries["coco_crop_9"] = probe.summary()

    imagenet_r = imagenet_r_set(data_root, cfg)
    if imagenet_r is not None:
        imagenet_r = dev(imagenet_r)
        train = dev(read_bg_challenge(data_root, "original", "train"))
        clean = dev(read_bg_challenge(data_root, "original", "val"))
        if train.classes != imagenet_r.classes:
            raise DataError(f"{class_maps.class_maps_dir() / 'imagenet_r_9.json'}: classes {imagenet_r.classes} "
                            f"differ from the ImageNet-9 classes of {train.root} ({train.classes})")
        selection = cfg.get("in9_val", "seeded")
        if selection not in ("seeded", "original_val"):
            raise ConfigError(f"dist_shift: in9_val must be 'seeded' or 'original_val', got {selection!r}")
        if selection == "original_val" and cfg.get("refit", True):
            raise ConfigError("dist_shift: in9_val 'original_val' selects on the clean test split, so the "
                              "head must not be refitted on it: set 'refit: false'")
        train_feats, clean_feats = features("in9_train", train), features("in9_val", clean)
        if selection == "seeded":
            probe = probe_with_seeded_val(train_feats, len(train.classes), cfg, device)
        else:
            probe = train_probe(train_feats, clean_feats, len(train.classes), ProbeConfig.from_cfg(cfg), device)
        acc = scores.score("imagenet_r_9", probe, features("imagenet_r_9", imagenet_r), imagenet_r)
        clean_acc = scores.score("in9_val", probe, clean_feats, clean)
        scores.add_head("in9", clean_acc, {"imagenet_r_9": acc})
        summaries["in9"] = probe.summary()

    if not scores.metrics:
        raise DataError(f"{data_root}: no shifted set found (expected {layout.SISCORE}/, {layout.OBJECTNET}/images "
                        f"or {cfg.get('imagenet_r_dir', 'imagenet-r')}/)")
    metrics = scores.metrics
    return TaskResult(metrics=metrics, higher_is_better={k: True for k in metrics},
                      dataset=cls_common.dataset_record("dist_shift", all_sets, prints), framework=cls_common.framework(),
                      extra={"heads": summaries}, samples=scores.table())


class DistShift(Task):
    """Accuracy of clean-trained linear heads on class-projected shifted sets."""

    def run(self, ctx: TaskContext) -> TaskResult:
        return evaluate_dist_shift(cls_common.extractor(ctx), ctx.data_root, ctx.cfg, ctx.device, ctx.progress,
                                   ctx.dev_run)

    def preflight(self, ctx: TaskContext) -> list[str]:
        """Read the shifted sets and project them through their class maps (every mapped
        class folder must exist), as :meth:`run` does before it extracts anything."""
        coco_sets(ctx.data_root, ctx.cfg, None)
        imagenet_r = imagenet_r_set(ctx.data_root, ctx.cfg)
        if imagenet_r is not None:
            in9 = read_bg_challenge(ctx.data_root, "original", "train")
            if in9.classes != imagenet_r.classes:
                raise DataError(f"{in9.root}: ImageNet-9 classes {in9.classes}; the ImageNet-R-9 head needs "
                                f"{imagenet_r.classes} (class map {class_maps.IMAGENET_R_9})")
        return []
