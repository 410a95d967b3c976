"""``harness data verify``: check every dataset found under a data root and name each problem's file.

For each registered dataset (:mod:`harness.data.registry`) with splits to check whose folder
exists under the root:
1. layout: every required split is present;
2. read: the split's reader runs (it checks every annotation file and the existence of
   every file it lists) and the split size is compared with the official size;
3. decode: an evenly spaced sample of the split's image (and label map / mask) files is
   fully decoded with PIL; detection images must have their declared size; segmentation
   label maps and masks must match their image's size;
4. labels: classification labels lie in ``[0, len(classes))``; sampled segmentation label
   maps hold only class values or the ignore index.

Row statuses: ``ok``; ``missing`` / ``malformed`` (a problem: non-zero exit); ``differs``
(size or class count differs from the official release: expected on the synthetic benchmark
or a subset, so informational unless ``strict_counts``); ``absent`` (dataset or optional
split not in this root; a problem only for a dataset asked for by name).
"""
from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from harness.data.fileio import DataFileError, MalformedDataError
from harness.data.images import check_image, load_label_map
from harness.data.masks import load_foreground_mask
from harness.data.image_sets import (ArrayClassificationSet, ClassificationSet, DetectionSet, MaskSet,
                                  SegmentationSet)
from harness.data.registry import Dataset, SplitSpec, StreamCheck, datasets, get_dataset
from harness.core.errors import ConfigError, DataError

PROBLEMS = ("missing", "malformed")


@dataclass(frozen=True)
class VerifyRow:
    status: str  # ok | missing | malformed | differs | absent
    dataset: str
    check: str
    path: str
    detail: str = ""


def verify(data_root: Path, dataset: str | None = None, sample: int = 8) -> list[VerifyRow]:
    """Check the datasets under ``data_root`` (all of them, or only ``dataset``); one row per finding."""
    data_root = Path(data_root)
    checked = [get_dataset(dataset)] if dataset is not None else [d for d in datasets().values() if d.splits]
    if dataset is not None and not checked[0].splits:
        raise ConfigError(f"dataset {dataset!r} has no files of its own for data verify to check: "
                          f"{checked[0].description}")
    if not data_root.is_dir():
        return [VerifyRow("missing", dataset or "-", "data root", str(data_root), "not a folder")]
    rows: list[VerifyRow] = []
    for spec in checked:
        rows.extend(verify_dataset(data_root, spec, sample, asked=dataset is not None))
    if not any(r.status != "absent" for r in rows):
        rows.append(VerifyRow("missing", "-", "data root", str(data_root),
                              f"no known dataset folder found; expected some of "
                              f"{', '.join(s.marker for s in checked)}"))
    return rows


def verify_dataset(data_root: Path, spec: Dataset, sample: int, asked: bool = False) -> list[VerifyRow]:
    """Rows for one dataset (see the module docstring)."""
    marker = data_root / spec.marker
    if not marker.is_dir():
        return [VerifyRow("missing" if asked else "absent", spec.name, "layout", str(marker),
                          f"{spec.description}: folder not found")]
    rows: list[VerifyRow] = []
    present = 0
    for split in spec.splits:
        probes = [data_root / p for p in split.probe]
        if not any(p.exists() for p in probes):
            status = "missing" if split.required else "absent"
            expected = " or ".join(str(p) for p in probes)
            rows.append(VerifyRow(status, spec.name, f"layout {split.name}", expected,
                                  "required split not found" if split.required else "optional split not present"))
            continue
        present += 1
        rows.extend(verify_split(data_root, spec, split, sample))
    if not present:
        rows.append(VerifyRow("missing", spec.name, "layout", str(marker), "no split of this dataset found"))
    return rows


def verify_split(data_root: Path, spec: Dataset, split: SplitSpec, sample: int) -> list[VerifyRow]:
    """Read one split, compare its size, decode a sample and check its labels."""
    def row(status: str, check: str, path: Path | str, detail: str = "") -> VerifyRow:
        return VerifyRow(status, spec.name, f"{check} {split.name}", str(path), detail)

    try:
        loaded = split.load(data_root)
    except DataFileError as exc:
        return [row(exc.kind, "read", exc.path, exc.detail)]
    except DataError as exc:
        return [row("malformed", "read", data_root / spec.marker, str(exc))]

    count, classes, where = _summary(loaded)
    rows = [row("ok", "read", where, f"{count:,} {'rows' if isinstance(loaded, StreamCheck) else 'images'}"
                + (f", {classes} classes" if classes is not None else ""))]
    differences = []
    if split.official is not None and count != split.official:
        differences.append(f"size {count:,}, official {split.official:,}")
    if classes is not None and spec.num_classes is not None and classes != spec.num_classes:
        differences.append(f"{classes} classes, official {spec.num_classes}")
    if differences:
        rows.append(row("differs", "count", where, "; ".join(differences)))
    if split.balanced and isinstance(loaded, ClassificationSet) and (problem := _unbalanced(loaded, split.balanced)):
        rows.append(row("malformed", "count", where, problem))
    for problem in _label_problems(loaded):
        rows.append(row("malformed", "labels", problem.path, problem.detail))
    for problem in _sample_problems(loaded, sample):
        rows.append(row(problem.kind, "decode", problem.path, problem.detail))
    return rows


def _summary(loaded: Any) -> tuple[int, int | None, Path]:
    """(size, number of classes or None, folder or file to show) of a loaded split."""
    if isinstance(loaded, StreamCheck):
        return loaded.rows, None, loaded.path
    if isinstance(loaded, DetectionSet):
        return len(loaded.images), len(loaded.categories), loaded.ann_file or loaded.root
    if isinstance(loaded, ArrayClassificationSet):
        return len(loaded.labels), len(loaded.classes), loaded.root
    if isinstance(loaded, MaskSet):
        return len(loaded.samples), None, loaded.root
    return len(loaded.samples), len(loaded.classes), loaded.root


def _unbalanced(loaded: ClassificationSet, why: str) -> str:
    """Empty when every class holds the same number of images; else the counts and ``why``."""
    counts = Counter(label for _, label in loaded.samples)
    if len(set(counts.values())) <= 1:
        return ""
    big = max(counts, key=counts.__getitem__)
    small = min(counts, key=counts.__getitem__)
    n_big, n_small = counts[big], counts[small]
    return (f"classes hold {n_small} to {n_big} images ({loaded.classes[small]!r}: {n_small}, "
            f"{loaded.classes[big]!r}: {n_big}); {why}")


def _label_problems(loaded: Any) -> list[DataFileError]:
    if isinstance(loaded, ClassificationSet):
        n = len(loaded.classes)
        for path, label in loaded.samples:
            if not 0 <= label < n:
                return [MalformedDataError(path, f"label {label}; expected 0..{n - 1}")]
    if isinstance(loaded, ArrayClassificationSet) and len(loaded.labels):
        low, high = int(loaded.labels.min()), int(loaded.labels.max())
        if low < 0 or high >= len(loaded.classes):
            return [MalformedDataError(loaded.root, f"labels {low}..{high}; expected 0..{len(loaded.classes) - 1}")]
    return []


def sample_indices(n: int, k: int) -> list[int]:
    """``k`` evenly spaced indices of ``range(n)`` (all of them when ``n <= k``), first and last included."""
    if n <= k:
        return list(range(n))
    if k <= 1:
        return [0][:k]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _sample_problems(loaded: Any, sample: int) -> list[DataFileError]:
    """Decode an evenly spaced sample of the split's files; one error per bad file."""
    problems: list[DataFileError] = []

    def attempt(check, *args) -> Any:
        try:
            return check(*args)
        except DataFileError as exc:
            problems.append(exc)
            return None

    if isinstance(loaded, StreamCheck):
        for i in sample_indices(len(loaded.files), sample):
            attempt(check_image, loaded.files[i])
    elif isinstance(loaded, ClassificationSet):
        for i in sample_indices(len(loaded.samples), sample):
            attempt(check_image, loaded.samples[i][0])
    elif isinstance(loaded, DetectionSet):
        for i in sample_indices(len(loaded.images), sample):
            image = loaded.images[i]
            size = attempt(check_image, image.path)
            if size is not None and size != (image.width, image.height):
                problems.append(MalformedDataError(image.path, f"image is {size[0]}x{size[1]}; the annotations "
                                                               f"say {image.width}x{image.height}"))
    elif isinstance(loaded, SegmentationSet):
        allowed = np.arange(len(loaded.classes) + (1 if loaded.reduce_zero_label else 0))
        allowed = np.append(allowed, loaded.ignore_index)
        for i in sample_indices(len(loaded.samples), sample):
            image_path, label_path = loaded.samples[i]
            size = attempt(check_image, image_path)
            labels = attempt(load_label_map, label_path)
            if labels is None:
                continue
            if size is not None and labels.shape[:2] != (size[1], size[0]):
                problems.append(MalformedDataError(label_path, f"label map is {labels.shape[1]}x{labels.shape[0]}; "
                                                               f"its image is {size[0]}x{size[1]}"))
            bad = np.setdiff1d(np.unique(labels), allowed)
            if bad.size:
                problems.append(MalformedDataError(label_path, f"label values {bad[:10].tolist()}; expected "
                                                               f"0..{allowed[-2]} or {loaded.ignore_index}"))
    elif isinstance(loaded, MaskSet):
        for i in sample_indices(len(loaded.samples), sample):
            image_path, mask_path = loaded.samples[i]
            size = attempt(check_image, image_path)
            mask = attempt(load_foreground_mask, mask_path, loaded.mask_format)
            if mask is not None and size is not None and loaded.mask_format != "npy" \
                    and mask.shape != (size[1], size[0]):
                problems.append(MalformedDataError(mask_path, f"mask is {mask.shape[1]}x{mask.shape[0]}; "
                                                              f"its image is {size[0]}x{size[1]}"))
    return problems


def format_table(rows: list[VerifyRow]) -> str:
    """The rows as an aligned text table: STATUS, DATASET, CHECK, PATH, DETAIL."""
    header = VerifyRow("STATUS", "DATASET", "CHECK", "PATH", "DETAIL")
    table = [header, *rows]
    widths = [max(len(getattr(r, f)) for r in table) for f in ("status", "dataset", "check", "path")]
    lines = []
    for r in table:
        cells = [r.status, r.dataset, r.check, r.path]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)) + ("  " + r.detail if r.detail else ""))
    return "\n".join(line.rstrip() for line in lines)


def verify_main(data_root: Path, dataset: str | None = None, sample: int = 8, strict_counts: bool = False,
                out: TextIO | None = None) -> int:
    """Print the verify table and a summary; return 0 when no file is missing or malformed, else 1.

    ``strict_counts`` also fails on ``differs`` rows (use it on a full copy of the official
    datasets, where every split must have the published size).
    """
    out = out or sys.stdout
    rows = verify(data_root, dataset, sample)
    print(format_table(rows), file=out)
    failing = set(PROBLEMS) | ({"differs"} if strict_counts else set())
    counts = {s: sum(r.status == s for r in rows) for s in ("ok", "missing", "malformed", "differs", "absent")}
    bad = sum(r.status in failing for r in rows)
    print(f"\n{'FAILED' if bad else 'OK'}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
          + (" (--strict-counts: size differences fail)" if strict_counts and counts["differs"] else ""), file=out)
    return 1 if bad else 0
