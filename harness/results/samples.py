"""Per-item values behind a task's metrics, so that a metric can be resampled.

A task that can returns a :class:`SampleTable` with its result: named *groups* of test
items (each item with an id, e.g. its image path relative to the data root) holding
per-item arrays (``correct``, ``label``, per-class intersections ...), and for each metric
a *spec* saying how the metric is computed from them:

- ``{"kind": "accuracy", "group": G, "array": A}``: 100 x mean of a 0/1 array;
- ``{"kind": "mean_per_class", "group": G, "array": A, "label": L}``: 100 x the mean over
  the classes present of the per-class mean of ``A``;
- ``{"kind": "mean", "group": G, "array": A, "scale": S}``: S x mean of ``A``;
- ``{"kind": "ratio", "group": G, "num": N, "den": D}``: 100 x sum(N) / sum(D) (a recall
  over all ground-truth boxes of all images);
- ``{"kind": "iou", "group": G, "inter": I, "union": U}``: 100 x the mean over classes of
  sum_items(I) / sum_items(U), classes with an empty union left out (mmseg's nan-mean);
- ``{"kind": "diff", "a": M1, "b": M2}`` and ``{"kind": "average", "of": [M, ...]}``: of
  other metrics of the table.

Items of one group are resampled together (every array of a group is indexed by the same
draw), groups independently. The table is stored as ``.npz`` (no pickled objects) beside
the result record, and its sha256 is part of the record.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import DataError, HarnessError
from harness.results.stats import Statistic, full_draw

KINDS = ("accuracy", "mean_per_class", "mean", "ratio", "iou", "diff", "average")
_SPEC_KEY = "__metrics__"


@dataclass
class Group:
    """One set of test items: their ids and per-item arrays (first axis = item)."""

    ids: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=str)
        for name, arr in self.arrays.items():
            if len(arr) != len(self.ids):
                raise ValueError(f"array {name!r} has {len(arr)} rows for {len(self.ids)} items")


@dataclass
class SampleTable:
    """Groups of items and the specs of the metrics computed from them."""

    groups: dict[str, Group]
    metrics: dict[str, dict[str, Any]]

    def __post_init__(self) -> None:
        for name, spec in self.metrics.items():
            self._check(name, spec)

    def _check(self, name: str, spec: dict[str, Any]) -> None:
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError(f"metric {name!r}: kind {kind!r} is not one of {KINDS}")
        if kind in ("diff", "average"):
            refs = [spec["a"], spec["b"]] if kind == "diff" else list(spec["of"])
            missing = [r for r in refs if r not in self.metrics]
            if missing:
                raise ValueError(f"metric {name!r} refers to unknown metric(s) {missing}")
            return
        group = self.groups.get(spec.get("group"))
        if group is None:
            raise ValueError(f"metric {name!r}: unknown group {spec.get('group')!r}")
        for key in ("array", "label", "inter", "union", "num", "den"):
            if key in spec and spec[key] not in group.arrays:
                raise ValueError(f"metric {name!r}: group {spec['group']!r} has no array {spec[key]!r}")

    @property
    def sizes(self) -> dict[str, int]:
        return {g: len(grp.ids) for g, grp in self.groups.items()}

    def statistic(self, metric: str) -> Statistic:
        """The metric as a function of resampled item indices (see :data:`harness.results.stats.Statistic`)."""
        if metric not in self.metrics:
            raise KeyError(metric)
        spec = self.metrics[metric]
        kind = spec["kind"]
        if kind == "diff":
            a, b = self.statistic(spec["a"]), self.statistic(spec["b"])
            return lambda draw: a(draw) - b(draw)
        if kind == "average":
            parts = [self.statistic(m) for m in spec["of"]]
            return lambda draw: np.mean([p(draw) for p in parts], axis=0)
        group = self.groups[spec["group"]]
        g = spec["group"]
        if kind in ("accuracy", "mean"):
            values = np.asarray(group.arrays[spec["array"]], np.float64)
            scale = 100.0 if kind == "accuracy" else float(spec.get("scale", 1.0))
            return lambda draw: scale * values[draw[g]].mean(axis=1)
        if kind == "mean_per_class":
            values = np.asarray(group.arrays[spec.get("array", "correct")], np.float64)
            labels = np.asarray(group.arrays[spec.get("label", "label")])
            classes = np.unique(labels)
            onehot = (labels[:, None] == classes[None, :]).astype(np.float64)  # (N, C)
            return lambda draw: _mean_per_class(values, onehot, draw[g])
        if kind == "ratio":
            num = np.asarray(group.arrays[spec["num"]], np.float64)
            den = np.asarray(group.arrays[spec["den"]], np.float64)
            return lambda draw: 100.0 * num[draw[g]].sum(axis=1) / np.maximum(den[draw[g]].sum(axis=1), 1e-12)
        inter = np.asarray(group.arrays[spec["inter"]], np.float64)
        union = np.asarray(group.arrays[spec["union"]], np.float64)
        return lambda draw: _iou(inter, union, draw[g])

    def value(self, metric: str) -> float:
        """The metric on every item once (the number the record reports)."""
        return float(self.statistic(metric)(full_draw(self.sizes))[0])

    def check_against(self, metrics: dict[str, float], tol: float = 1e-6) -> None:
        """Every spec must reproduce the reported metric (a wrong spec is a bug, not noise)."""
        for name in self.metrics:
            if name not in metrics:
                raise HarnessError(f"per-item table has metric {name!r}, which the result does not report")
            if abs(self.value(name) - float(metrics[name])) > tol * max(1.0, abs(float(metrics[name]))):
                raise HarnessError(f"per-item table gives {name} = {self.value(name):.6f}, the result "
                                   f"reports {float(metrics[name]):.6f}")

    # -- files -----------------------------------------------------------------
    def to_bytes(self) -> bytes:
        blob: dict[str, np.ndarray] = {_SPEC_KEY: np.asarray(json.dumps(self.metrics, sort_keys=True))}
        for g, grp in self.groups.items():
            blob[f"{g}/ids"] = grp.ids
            for name, arr in grp.arrays.items():
                blob[f"{g}/{name}"] = np.asarray(arr)
        buf = io.BytesIO()
        np.savez_compressed(buf, **blob)
        return buf.getvalue()

    @classmethod
    def load(cls, path: Path) -> "SampleTable":
        try:
            with np.load(path, allow_pickle=False) as z:
                metrics = json.loads(str(z[_SPEC_KEY]))
                groups: dict[str, Group] = {}
                for key in z.files:
                    if key == _SPEC_KEY:
                        continue
                    g, _, name = key.partition("/")
                    groups.setdefault(g, Group(np.empty(0, str)))
                    if name == "ids":
                        groups[g].ids = z[key].astype(str)
                    else:
                        groups[g].arrays[name] = z[key]
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: not a per-item table ({exc})") from exc
        try:
            return cls({g: Group(grp.ids, grp.arrays) for g, grp in groups.items()}, metrics)
        except (ValueError, KeyError) as exc:
            raise DataError(f"{path}: malformed per-item table ({exc})") from exc

    def same_items(self, other: "SampleTable", metric: str) -> bool:
        """Whether ``metric`` is computed from the same items, in the same order, in both."""
        return all(g in other.groups and np.array_equal(self.groups[g].ids, other.groups[g].ids)
                   for g in self.metric_groups(metric))

    def metric_groups(self, metric: str) -> list[str]:
        spec = self.metrics[metric]
        if spec["kind"] == "diff":
            return sorted(set(self.metric_groups(spec["a"])) | set(self.metric_groups(spec["b"])))
        if spec["kind"] == "average":
            return sorted({g for m in spec["of"] for g in self.metric_groups(m)})
        return [spec["group"]]


def _draw_counts(rows: np.ndarray, n: int) -> np.ndarray:
    """(b, n) draws of item indices -> (b, n) how often each item was drawn."""
    flat = rows + n * np.arange(len(rows))[:, None]
    return np.bincount(flat.ravel(), minlength=len(rows) * n).reshape(len(rows), n).astype(np.float64)


def _mean_per_class(values: np.ndarray, onehot: np.ndarray, idx: np.ndarray, chunk: int = 64) -> np.ndarray:
    """(N,) values, (N, C) class indicators, (B, N) draws -> (B,) mean over present classes."""
    weighted, out = values[:, None] * onehot, []
    for i in range(0, len(idx), chunk):
        drawn = _draw_counts(idx[i:i + chunk], len(values))
        counts, sums = drawn @ onehot, drawn @ weighted  # (b, C)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(100.0 * np.nanmean(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), axis=1))
    return np.concatenate(out)


def _iou(inter: np.ndarray, union: np.ndarray, idx: np.ndarray, chunk: int = 64) -> np.ndarray:
    """(N, C) per-item intersections and unions, (B, N) draws -> (B,) mean IoU over classes present."""
    out = []
    for i in range(0, len(idx), chunk):
        drawn = _draw_counts(idx[i:i + chunk], len(inter))
        si, su = drawn @ inter, drawn @ union  # (b, C)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(100.0 * np.nanmean(np.where(su > 0, si / np.maximum(su, 1e-12), np.nan), axis=1))
    return np.concatenate(out)


def accuracy_group(ids: list[str] | np.ndarray, pred: np.ndarray, label: np.ndarray) -> Group:
    """A group of classified items: ``correct`` (0/1) and ``label``."""
    pred, label = np.asarray(pred), np.asarray(label)
    return Group(np.asarray(ids, dtype=str), {"correct": (pred == label).astype(np.uint8),
                                              "label": label.astype(np.int32)})


def accuracy_spec(metric: str, group: str) -> dict[str, Any]:
    """The spec of ``top1`` or ``mean_per_class`` on an :func:`accuracy_group`."""
    if metric == "top1":
        return {"kind": "accuracy", "group": group, "array": "correct"}
    if metric == "mean_per_class":
        return {"kind": "mean_per_class", "group": group, "array": "correct", "label": "label"}
    raise ValueError(f"no per-item form for metric {metric!r}")
