"""Per-class bootstrap statistics (mean per-class accuracy, mean IoU): the harness's
draw-count matrix product vs a per-draw one-hot reduction, side by side on the same draws.

The one-hot reduction gathers ``(b, N, C)`` for every chunk of ``b`` draws; the harness
counts how often each item was drawn (``(b, N)``) and multiplies by the ``(N, C)``
per-item table. Both give the same numbers (0/1 values and integer pixel counts sum
exactly in float64); the script exits 1 if they differ. ``harness tables`` runs these
statistics for every bold and floor mark of the committed records.

    python benchmarks/perf/bootstrap_per_class.py [--items 3000] [--classes 100] [--draws 2000]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from harness.results.samples import _iou, _mean_per_class


def one_hot_mean_per_class(values: np.ndarray, onehot: np.ndarray, idx: np.ndarray, chunk: int = 64) -> np.ndarray:
    out = []
    for i in range(0, len(idx), chunk):
        rows = idx[i:i + chunk]
        counts, sums = onehot[rows].sum(axis=1), (values[rows][..., None] * onehot[rows]).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(100.0 * np.nanmean(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), axis=1))
    return np.concatenate(out)


def gathered_iou(inter: np.ndarray, union: np.ndarray, idx: np.ndarray, chunk: int = 64) -> np.ndarray:
    out = []
    for i in range(0, len(idx), chunk):
        rows = idx[i:i + chunk]
        si, su = inter[rows].sum(axis=1), union[rows].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(100.0 * np.nanmean(np.where(su > 0, si / np.maximum(su, 1e-12), np.nan), axis=1))
    return np.concatenate(out)


def timed(fn, *args) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=3000)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--draws", type=int, default=2000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, args.classes, args.items)
    onehot = (labels[:, None] == np.arange(args.classes)[None, :]).astype(np.float64)
    correct = (rng.random(args.items) < 0.6).astype(np.float64)
    union = rng.integers(0, 500, (args.items, args.classes)).astype(np.float64)
    inter = np.floor(union * rng.random((args.items, args.classes)))
    draws = rng.integers(0, args.items, (args.draws, args.items))
    failed = False
    print(f"{args.items} items, {args.classes} classes, {args.draws} draws")
    for name, ours, ref, data in (("mean per-class accuracy", _mean_per_class, one_hot_mean_per_class,
                                   (correct, onehot)), ("mean IoU", _iou, gathered_iou, (inter, union))):
        t_ref, want = timed(ref, *data, draws)
        t_ours, got = timed(ours, *data, draws)
        same = np.allclose(got, want, rtol=0, atol=1e-9)
        failed |= not same
        print(f"{name}: per-draw reduction {t_ref:.2f} s, draw counts x table {t_ours:.2f} s: "
              f"{t_ref / t_ours:.1f}x; same values: {same}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
