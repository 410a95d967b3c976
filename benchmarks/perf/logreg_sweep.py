"""The 45-value L2 sweep of the linear probe: harness (torch L-BFGS) vs scikit-learn.

Both solve the same problem on the same features: multinomial logistic regression,
penalty ``l2`` over logspace(-6, 5, 45) (scikit-learn ``C = 1 / l2``), strongest penalty
first, warm-started, the penalty chosen on a validation split (ties to the stronger one),
then refit on train + val and scored on test. Prints both accuracies, the chosen
penalties, the wall times and the speed ratio; exits 1 when the test accuracies differ by
more than ``--max-diff`` points.

Features: ``--features FILE`` (a feature-cache entry, ``{"x": (N, D), "y": (N,)}``, e.g.
from ``<harness cache>/features``), else a seeded mixture of overlapping Gaussian classes
of the given size.

    python benchmarks/perf/logreg_sweep.py                      # CPU, synthetic features
    python benchmarks/perf/logreg_sweep.py --device cuda --n 50000 --dim 2048 --classes 100
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from harness.tasks import logreg
from harness.tasks.features import Features
from harness.tasks.probe import split_indices


def synthetic_features(n: int, dim: int, classes: int, seed: int) -> Features:
    """Overlapping Gaussian classes in a random low-rank-plus-noise geometry (like pooled CNN features)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, dim, generator=g) * 0.1
    mix = torch.randn(dim, dim // 8, generator=g) / (dim // 8) ** 0.5
    y = torch.arange(n) % classes
    x = means[y] + torch.randn(n, dim // 8, generator=g) @ mix.T + 0.5 * torch.randn(n, dim, generator=g)
    return Features(x.relu(), y)


def split(feats: Features, seed: int) -> tuple[Features, Features, Features]:
    rest, test = split_indices(len(feats), 0.2, seed)
    tr, va = split_indices(len(rest), 0.2, seed + 1)
    return feats.subset(rest[tr]), feats.subset(rest[va]), feats.subset(test)


def run_harness(train: Features, val: Features, test: Features, grid: list[float], max_iter: int, tol: float,
                device: str) -> tuple[float, float, float]:
    k = int(train.y.max()) + 1
    tr, va, te = train.to(device), val.to(device), test.to(device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = logreg.sweep(tr.x, tr.y, va.x, va.y, k, grid, max_iter=max_iter, tol=tol)
    both = Features.cat([tr, va])
    head, _ = logreg.fit(both.x, both.y, k, result.best_l2, init=result.head, max_iter=max_iter, tol=tol)
    acc = logreg.evaluate(head, te.x, te.y)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return acc, result.best_l2, time.perf_counter() - start


def run_sklearn(train: Features, val: Features, test: Features, grid: list[float], max_iter: int, tol: float
                ) -> tuple[float, float, float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    xtr, ytr = train.x.double().numpy(), train.y.numpy()
    xva, yva = val.x.double().numpy(), val.y.numpy()
    start = time.perf_counter()
    clf = LogisticRegression(solver="lbfgs", warm_start=True, max_iter=max_iter, tol=tol)
    best_l2, best_score, best_coef = None, -1.0, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for l2 in sorted(grid, reverse=True):
            clf.set_params(C=1.0 / l2)
            clf.fit(xtr, ytr)
            score = 100.0 * float((clf.predict(xva) == yva).mean())
            if score > best_score:
                best_l2, best_score, best_coef = l2, score, (clf.coef_.copy(), clf.intercept_.copy())
        clf.set_params(C=1.0 / best_l2)
        clf.coef_, clf.intercept_ = best_coef
        clf.fit(np.concatenate([xtr, xva]), np.concatenate([ytr, yva]))
    acc = 100.0 * float((clf.predict(test.x.double().numpy()) == test.y.numpy()).mean())
    return acc, best_l2, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", type=Path, help="a feature-cache .pt file with x and y")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num", type=int, default=45, help="grid size over logspace(-6, 5)")
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--max-diff", type=float, default=0.5)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.features:
        blob = torch.load(args.features, map_location="cpu", weights_only=True)
        feats = Features(blob["x"].float(), blob["y"].long())
    else:
        feats = synthetic_features(args.n, args.dim, args.classes, args.seed)
    train, val, test = split(feats, args.seed)
    grid = logreg.l2_grid(-6, 5, args.num)
    print(f"features: {len(feats)} x {feats.x.shape[1]}, {int(feats.y.max()) + 1} classes; "
          f"train/val/test {len(train)}/{len(val)}/{len(test)}; grid {args.num}; max_iter {args.max_iter}; tol {args.tol}")
    ours = run_harness(train, val, test, grid, args.max_iter, args.tol, args.device)
    ref = run_sklearn(train, val, test, grid, args.max_iter, args.tol)
    print(f"harness ({args.device}): test {ours[0]:.2f}%  best l2 {ours[1]:.3g}  {ours[2]:.2f} s")
    print(f"scikit-learn (cpu)  : test {ref[0]:.2f}%  best l2 {ref[1]:.3g}  {ref[2]:.2f} s")
    diff = abs(ours[0] - ref[0])
    print(f"speed ratio (scikit-learn time / harness time): {ref[2] / ours[2]:.2f}x; accuracy difference {diff:.2f} points")
    if diff > args.max_diff:
        print(f"MISMATCH: accuracies differ by more than {args.max_diff} points")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
