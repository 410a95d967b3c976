"""Background shift: the Backgrounds Challenge (ImageNet-9) with a linear head.

The head is trained on ``bg_challenge/original/train`` (L2 penalty chosen on a seeded
``val_size`` subset of it, refit on all of it) and tested on ``<variant>/val`` of every
variant present. ``bg_gap`` = acc(mixed_same) - acc(mixed_rand): how much accuracy
depends on a background that matches the class (lower is better).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.results import samples
from harness.api import Task, TaskContext, TaskResult
from harness.data import layout
from harness.data.bg_challenge import VARIANTS, read_bg_challenge
from harness.core.errors import DataError
from harness.tasks import cls_common, logreg
from harness.tasks.features import FeatureExtractor, Features, TransformSpec
from harness.tasks.probe import probe_with_seeded_val


def bg_gap(acc: dict[str, float]) -> float:
    """acc(mixed_same) - acc(mixed_rand), both in percent."""
    missing = [v for v in ("mixed_same", "mixed_rand") if v not in acc]
    if missing:
        raise DataError(f"BG-Gap needs the accuracies of mixed_same and mixed_rand; missing {', '.join(missing)}")
    return acc["mixed_same"] - acc["mixed_rand"]


def present_variants(data_root: Path) -> list[str]:
    """The Backgrounds Challenge variants with a ``val`` folder, in the canonical order."""
    base = Path(data_root) / layout.BG_CHALLENGE
    return [v for v in VARIANTS if (base / v / "val").is_dir()]


def variant_table(sets: dict[str, Any], preds: dict[str, Any], labels: dict[str, Any]) -> samples.SampleTable:
    """Per-item correctness of every variant; variants holding the same items (the same
    foregrounds under the same file names, as in the release) form one group, so that
    BG-Gap is resampled over foregrounds, paired across variants."""
    groups: dict[str, samples.Group] = {}
    specs: dict[str, dict[str, Any]] = {}
    for v, ds in sets.items():
        item = samples.accuracy_group(ds.item_ids(), preds[v].numpy(), labels[v].numpy())
        shared = next((g for g, grp in groups.items() if np.array_equal(grp.ids, item.ids)), None)
        if shared is None:
            shared = v
            groups[v] = samples.Group(item.ids, {"label": item.arrays["label"]})
        groups[shared].arrays[f"correct_{v}"] = item.arrays["correct"]
        specs[f"acc_{v}"] = {"kind": "accuracy", "group": shared, "array": f"correct_{v}"}
    if "acc_mixed_same" in specs and "acc_mixed_rand" in specs:
        specs["bg_gap"] = {"kind": "diff", "a": "acc_mixed_same", "b": "acc_mixed_rand"}
    return samples.SampleTable(groups, specs)


def evaluate_bg_shift(ex: FeatureExtractor, data_root: Path, cfg: dict[str, Any], device: str,
                      progress: Any = None, dev_run: dict[str, int] | None = None) -> TaskResult:
    variants = present_variants(data_root)
    if "original" not in variants:
        raise DataError(f"{Path(data_root) / layout.BG_CHALLENGE / 'original' / 'val'}: missing; "
                        "the Backgrounds Challenge needs at least the original variant")
    sets = {"original_train": read_bg_challenge(data_root, "original", "train")}
    sets.update({v: read_bg_challenge(data_root, v, "val") for v in variants})
    sets = {name: cls_common.dev_subset(ds, dev_run) for name, ds in sets.items()}  # the same items per variant
    classes = sets["original_train"].classes
    for name, ds in sets.items():
        if ds.classes != classes:
            raise DataError(f"{ds.root}: classes {ds.classes}; expected those of original/train {classes}")
    prints = cls_common.fingerprints(sets)
    spec = TransformSpec.from_cfg(cfg)
    feats: dict[str, Features] = {}
    for i, (name, ds) in enumerate(sets.items()):
        feats[name] = ex(ds, prints[name], spec)
        if progress:
            progress(i + 1, len(sets) + 1, phase=f"features {name}")
    probe = probe_with_seeded_val(feats["original_train"], len(classes), cfg, device)
    preds = {v: probe.predict(feats[v]) for v in variants}
    acc = {v: logreg.score(preds[v], feats[v].y.cpu(), "top1") for v in variants}
    metrics = {f"acc_{v}": a for v, a in acc.items()}
    if "mixed_same" in acc and "mixed_rand" in acc:
        metrics["bg_gap"] = bg_gap(acc)
    items = variant_table({v: sets[v] for v in variants}, preds, {v: feats[v].y.cpu() for v in variants})
    if progress:
        progress(len(sets) + 1, len(sets) + 1, phase="probe")
    return TaskResult(metrics=metrics, higher_is_better={k: k != "bg_gap" for k in metrics},
                      dataset=cls_common.dataset_record("bg_challenge", sets, prints),
                      framework=cls_common.framework(), extra=probe.summary(), samples=items)


class BgShift(Task):
    """Backgrounds Challenge accuracies and BG-Gap of a linear head on ImageNet-9."""

    def run(self, ctx: TaskContext) -> TaskResult:
        return evaluate_bg_shift(cls_common.extractor(ctx), ctx.data_root, ctx.cfg, ctx.device, ctx.progress,
                                 ctx.dev_run)
