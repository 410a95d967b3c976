"""Task metrics recomputed by plain numpy code on small hand-made inputs.

kNN voting (cosine similarity, k, temperature weights), top-1 and mean-per-class
accuracy, the penalty sweep's selection rule, segmentation label handling and mIoU /
mAcc / aAcc with ignored pixels, BG-Gap and its per-item table, the distribution-shift
differences, and CAM localization's mask IoU and box recall.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from harness.core.errors import DataError
from harness.data.image_sets import SegmentationSet
from harness.results import samples
from harness.tasks import cam_localization as camloc
from harness.tasks import logreg, seg_probe
from harness.tasks.features import Features
from harness.tasks.knn import knn_predict


# ---------------------------------------------------------------- kNN
def _plain_knn(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, n_classes: int, k: int,
               temperature: float) -> list[int]:
    """For each query: cosine similarity to every train row, the k largest, votes
    exp(sim / T) summed per class, the class with the most."""
    bank = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    out = []
    for q in test_x:
        sim = bank @ (q / np.linalg.norm(q))
        nearest = np.argsort(-sim, kind="stable")[:min(k, len(bank))]
        votes = np.zeros(n_classes)
        for j in nearest:
            votes[train_y[j]] += math.exp(sim[j] / temperature)
        out.append(int(np.argmax(votes)))
    return out


def _knn_data(seed: int, n_train: int = 40, n_test: int = 25, dim: int = 5, n_classes: int = 4):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (n_classes, dim))
    ty = rng.integers(0, n_classes, n_train)
    tx = centres[ty] + rng.normal(0, 1.2, (n_train, dim))
    qy = rng.integers(0, n_classes, n_test)
    qx = centres[qy] + rng.normal(0, 1.2, (n_test, dim))
    return tx, ty, qx, qy


def _knn_dense_data(seed: int = 1, n_train: int = 80, n_test: int = 40, dim: int = 16, n_classes: int = 4):
    """Features sharing one large common direction: cosine similarities lie close
    together, so that at the default temperature many neighbours carry weight."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (n_classes, dim))
    ty, qy = rng.integers(0, n_classes, n_train), rng.integers(0, n_classes, n_test)
    base = np.zeros(dim)
    base[0] = 6.0
    tx = base + 0.6 * centres[ty] + rng.normal(0, 1.0, (n_train, dim))
    qx = base + 0.6 * centres[qy] + rng.normal(0, 1.0, (n_test, dim))
    return tx, ty, qx, qy


def test_knn_default_setting_matches_the_plain_vote_on_close_similarities() -> None:
    tx, ty, qx, qy = _knn_dense_data()
    want = _plain_knn(tx, ty, qx, 4, 20, 0.07)
    for other in (_plain_knn(tx, ty, qx, 4, 19, 0.07), _plain_knn(tx, ty, qx, 4, 21, 0.07),
                  _plain_knn(tx, ty, qx, 4, 20, 0.06), _plain_knn(tx, ty, qx, 4, 20, 0.08)):
        assert other != want  # the data tells k and temperature apart
    got = knn_predict(Features(torch.tensor(tx), torch.tensor(ty)), Features(torch.tensor(qx), torch.tensor(qy)), 4)
    assert got.tolist() == want


@pytest.mark.parametrize("k", [1, 2, 5, 13, 40, 100])
@pytest.mark.parametrize("temperature", [0.03, 0.3, 3.0])
def test_knn_matches_a_plain_weighted_vote(k: int, temperature: float) -> None:
    tx, ty, qx, qy = _knn_data(k)
    train = Features(torch.tensor(tx, dtype=torch.float32), torch.tensor(ty))
    test = Features(torch.tensor(qx, dtype=torch.float32), torch.tensor(qy))
    want = _plain_knn(tx.astype(np.float32).astype(np.float64), ty, qx.astype(np.float32).astype(np.float64), 5, k,
                      temperature)
    got = knn_predict(train, test, 5, k=k, temperature=temperature, chunk=7).tolist()  # several chunks
    assert got == want
    assert knn_predict(train, test, 5, k=k, temperature=temperature).tolist() == want  # one chunk


def test_knn_predictions_depend_on_k_and_temperature() -> None:
    """The oracle comparison above is not vacuous: on its data, one neighbour more or
    less, or another temperature, changes some prediction."""
    for k in (3, 5):
        tx, ty, qx, _ = _knn_data(k)
        preds = {kk: _plain_knn(tx, ty, qx, 5, kk, 0.3) for kk in (k - 1, k, k + 1)}
        assert preds[k] != preds[k - 1] and preds[k] != preds[k + 1]
    for k in (13, 40):
        tx, ty, qx, _ = _knn_data(k)
        assert _plain_knn(tx, ty, qx, 5, k, 0.3) != _plain_knn(tx, ty, qx, 5, k, 0.6)
    tx, ty, qx, _ = _knn_data(100)
    assert _plain_knn(tx, ty, qx, 5, 100, 0.03) != _plain_knn(tx, ty, qx, 5, 100, 1e9)  # not an unweighted vote


def test_knn_is_scale_invariant_and_counts_an_identical_train_row() -> None:
    tx, ty, qx, qy = _knn_data(7)
    scales = np.random.default_rng(0).uniform(0.01, 100.0, (len(tx), 1))
    base = knn_predict(Features(torch.tensor(tx), torch.tensor(ty)), Features(torch.tensor(qx), torch.tensor(qy)), 4,
                       k=5, temperature=0.1)
    scaled = knn_predict(Features(torch.tensor(tx * scales), torch.tensor(ty)),
                         Features(torch.tensor(qx * 3.0), torch.tensor(qy)), 4, k=5, temperature=0.1)
    assert torch.equal(base, scaled)
    # a query equal to a train row: that row is its nearest neighbour and is not left out
    train = Features(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), torch.tensor([2, 0, 1]))
    assert knn_predict(train, Features(torch.tensor([[0.6, 0.8]]), torch.tensor([0])), 3, k=1).tolist() == [0]
    # opposite directions are the least similar, not the most
    far = Features(torch.tensor([[-1.0, 0.0], [0.9, 0.1]]), torch.tensor([0, 1]))
    assert knn_predict(far, Features(torch.tensor([[1.0, 0.0]]), torch.tensor([1])), 2, k=1).tolist() == [1]


# ---------------------------------------------------------------- accuracy
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_plain_top1_and_mean_per_class(seed: int) -> None:
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 5, 37)
    target[target == 3] = 4  # class 3 absent from the targets
    pred = np.where(rng.random(37) < 0.5, target, rng.integers(0, 6, 37))
    top1 = 100.0 * np.mean(pred == target)
    mpc = 100.0 * np.mean([np.mean(pred[target == c] == c) for c in np.unique(target)])
    t, p = torch.tensor(target), torch.tensor(pred)
    assert logreg.score(p, t, "top1") == pytest.approx(top1, rel=1e-12)
    assert logreg.score(p, t, "mean_per_class") == pytest.approx(mpc, rel=1e-12)
    head = logreg.LinearHead(torch.eye(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64))
    onehot = torch.nn.functional.one_hot(p, 6).double()
    assert logreg.evaluate(head, onehot, t, "top1") == pytest.approx(top1)
    with pytest.raises(ValueError):
        logreg.score(p[:0], t[:0])


# ---------------------------------------------------------------- penalty sweep
def _stub_fits(monkeypatch: pytest.MonkeyPatch, scores_by_l2: dict[float, float]) -> list[tuple[float, Any]]:
    """Replace the fit and the validation score by stubs: a fitted head remembers its
    penalty; its validation score is looked up by penalty."""
    calls: list[tuple[float, Any]] = []

    def fit(x, y, n_classes, l2, init=None, **_):
        calls.append((l2, None if init is None else float(init.bias[0])))
        return logreg.LinearHead(torch.zeros(n_classes, x.shape[1], dtype=torch.float64),
                                 torch.full((n_classes,), float(l2), dtype=torch.float64)), 3

    monkeypatch.setattr(logreg, "fit", fit)
    monkeypatch.setattr(logreg, "evaluate", lambda head, x, y, metric="top1": scores_by_l2[float(head.bias[0])])
    return calls


def test_sweep_goes_strongest_first_warm_starts_and_keeps_the_best(monkeypatch: pytest.MonkeyPatch) -> None:
    grid = [0.01, 0.1, 1.0, 10.0, 100.0]
    calls = _stub_fits(monkeypatch, {0.01: 60.0, 0.1: 75.0, 1.0: 80.0, 10.0: 70.0, 100.0: 40.0})
    x, y = torch.zeros(4, 3), torch.tensor([0, 1, 0, 1])
    res = logreg.sweep(x, y, x, y, 2, grid)
    assert [c[0] for c in calls] == [100.0, 10.0, 1.0, 0.1, 0.01]
    assert [c[1] for c in calls] == [None, 100.0, 10.0, 1.0, 0.1]  # each fit starts from the previous head
    assert res.best_index == 2 and res.best_l2 == 1.0 and float(res.head.bias[0]) == 1.0
    assert res.val_scores == [60.0, 75.0, 80.0, 70.0, 40.0] and res.iterations == [3] * 5
    assert res.l2_grid == grid


def test_sweep_ties_go_to_the_stronger_penalty(monkeypatch: pytest.MonkeyPatch) -> None:
    grid = [0.01, 0.1, 1.0, 10.0]
    _stub_fits(monkeypatch, {0.01: 90.0, 0.1: 90.0, 1.0: 90.0, 10.0: 50.0})
    x, y = torch.zeros(4, 3), torch.tensor([0, 1, 0, 1])
    res = logreg.sweep(x, y, x, y, 2, grid)
    assert res.best_l2 == 1.0 and res.best_index == 2 and float(res.head.bias[0]) == 1.0
    unsorted = [1.0, 0.01, 10.0, 0.1]  # the grid's order does not matter, only the penalties
    res = logreg.sweep(x, y, x, y, 2, unsorted)
    assert res.best_l2 == 1.0 and res.best_index == 0 and res.val_scores == [90.0, 90.0, 50.0, 90.0]


def test_contracam_sweep_goes_weakest_first_and_keeps_the_first_best(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    grid = [10.0, 0.01, 1.0, 0.1]
    by_call = iter([70.0, 90.0, 90.0, 60.0])  # scores of the fits, weakest penalty first

    def evaluate(head, x, y, metric="top1"):
        seen.append(float(head.weight.abs().sum()))
        return next(by_call)

    monkeypatch.setattr(logreg, "evaluate", evaluate)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, generator=g)
    y = torch.arange(12) % 2
    res = logreg.sweep(x, y, x, y, 2, grid, max_iter=2, protocol="contracam")
    # weakest first: 0.01 -> 70, 0.1 -> 90, 1.0 -> 90 (a tie, the first kept), 10 -> 60
    assert res.best_l2 == 0.1 and res.best_index == 3
    assert res.val_scores == [60.0, 70.0, 90.0, 90.0]
    assert len(seen) == 4


def test_l2_grid_is_logspace() -> None:
    assert logreg.l2_grid(-2, 1, 4) == pytest.approx([0.01, 0.1, 1.0, 10.0])
    assert logreg.l2_grid(-6, 5, 45) == pytest.approx(list(np.logspace(-6, 5, 45)))


# ---------------------------------------------------------------- segmentation
def _seg_set(tmp_path: Path, labels: list[np.ndarray], classes: int, ignore: int, reduce_zero: bool) -> SegmentationSet:
    root = tmp_path / "seg"
    (root / "img").mkdir(parents=True)
    (root / "lab").mkdir()
    pairs = []
    for i, lab in enumerate(labels):
        img, lp = root / "img" / f"{i}.png", root / "lab" / f"{i}.png"
        Image.fromarray(np.full((*lab.shape, 3), 100, np.uint8)).save(img)
        Image.fromarray(lab.astype(np.uint8), mode="L").save(lp)
        pairs.append((img, lp))
    return SegmentationSet("toy", root, [f"c{k}" for k in range(classes)], pairs, ignore_index=ignore,
                           reduce_zero_label=reduce_zero)


def test_read_label_ignores_and_reduces_zero(tmp_path: Path) -> None:
    raw = np.array([[0, 1, 2], [3, 255, 1]])
    voc = _seg_set(tmp_path / "a", [raw], 4, 255, False)
    assert seg_probe.read_label(voc.samples[0][1], voc).tolist() == [[0, 1, 2], [3, -1, 1]]
    ade = _seg_set(tmp_path / "b", [np.array([[0, 1, 2], [3, 3, 1]])], 3, 255, True)
    assert seg_probe.read_label(ade.samples[0][1], ade).tolist() == [[-1, 0, 1], [2, 2, 0]]
    bad = _seg_set(tmp_path / "c", [np.array([[0, 4]])], 4, 255, False)
    with pytest.raises(DataError, match="label value 4"):
        seg_probe.read_label(bad.samples[0][1], bad)


def test_cell_labels_keep_a_cell_with_exactly_half_ignored() -> None:
    lab = np.full((4, 4), -1, np.int64)
    lab[:, :2] = 1  # left cell: no pixel ignored
    lab[0:2, 2:] = 2  # right cell: half class 2, half ignored -> class 2
    lab[2, 2] = 0  # ... one pixel moved from class 2 to class 0 still leaves half ignored
    lab[0, 2] = -1
    out = seg_probe.cell_labels(lab, (4, 4), (1, 2), n_classes=3)
    assert out.tolist() == [[1, 2]]
    lab[2, 2] = -1  # now 5 of 8 ignored -> left out
    lab[0, 2] = 2
    lab[1, 3] = -1
    assert seg_probe.cell_labels(lab, (4, 4), (1, 2), n_classes=3).tolist() == [[1, -1]]


def _plain_confusion(pred: np.ndarray, gt: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: intersection, union and ground-truth pixels over the labelled pixels."""
    valid = gt >= 0
    inter = np.array([np.sum((pred == c) & (gt == c) & valid) for c in range(n)])
    area_pred = np.array([np.sum((pred == c) & valid) for c in range(n)])
    area_gt = np.array([np.sum(gt == c) for c in range(n)])
    return inter, area_pred + area_gt - inter, area_gt


def _seg_case(seed: int, n_classes: int, shape: tuple[int, int] = (6, 7), n: int = 3):
    rng = np.random.default_rng(seed)
    gts = [rng.integers(0, n_classes, shape) for _ in range(n)]
    preds = [np.where(rng.random(shape) < 0.6, g, rng.integers(0, n_classes, shape)) for g in gts]
    for g in gts:
        g[rng.random(shape) < 0.25] = -1  # ignored pixels
    gts[0][:, :] = np.where(gts[0] == n_classes - 1, 0, gts[0])  # the last class only in later images
    return preds, gts


def _patch_features(monkeypatch: pytest.MonkeyPatch, preds: list[np.ndarray], n_classes: int) -> None:
    """The backbone's features of the i-th image: the one-hot map of ``preds[i]``."""
    maps = iter(preds)

    def feature_maps(net, inp, levels):
        onehot = torch.nn.functional.one_hot(torch.from_numpy(next(maps)), n_classes).permute(2, 0, 1).float()
        assert tuple(onehot.shape[-2:]) == tuple(inp.shape[-2:])
        return {"layer1": onehot[None]}

    monkeypatch.setattr(seg_probe.dense_features, "feature_maps", feature_maps)


def _seg_cfg(short_side: int) -> seg_probe.SegProbeConfig:
    return seg_probe.SegProbeConfig(dataset="voc", short_side=short_side, levels=("layer1",), l2_grid={}, max_iter=1,
                                    tol=1e-4, val_size=0.2, split_seed=0, stride=1, max_cells=10)


@pytest.mark.parametrize("reduce_zero", [False, True])
def test_seg_evaluation_counts_match_a_plain_confusion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       reduce_zero: bool) -> None:
    k = 4
    preds, gts = _seg_case(1 + reduce_zero, k)
    ignore = 255
    raw = [np.where(g < 0, ignore, g) if not reduce_zero else np.where(g < 0, 0, g + 1) for g in gts]
    ds = _seg_set(tmp_path, raw, k, ignore, reduce_zero)
    _patch_features(monkeypatch, preds, k)
    head = logreg.LinearHead(torch.eye(k), torch.zeros(k))
    inter, union, gt = seg_probe.SegProbe()._evaluate(torch.nn.Identity(), head, ds, _seg_cfg(6), k, "cpu")
    for i, (p, g) in enumerate(zip(preds, gts)):
        want = _plain_confusion(p, g, k)
        assert inter[i].tolist() == want[0].tolist()
        assert union[i].tolist() == want[1].tolist()
        assert gt[i].tolist() == want[2].tolist()


def test_seg_probe_reports_mmseg_style_miou_macc_aacc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's metrics from its per-image counts: per-class sums over the split, classes
    with an empty union (or no ground truth, for mAcc) left out; aAcc over labelled pixels."""
    k = 5
    preds, gts = _seg_case(4, k, n=4)
    for g in gts:
        g[g == 3] = 0  # class 3 never in the ground truth ...
    preds[1][0, 0] = 3  # ... but predicted once (union > 0, IoU 0: in mIoU, not in mAcc)
    gts[1][0, 0] = 1
    for p in preds:
        p[p == 4] = 0  # class 4: neither predicted nor present
    for g in gts:
        g[g == 4] = 2
    counts = [_plain_confusion(p, g, k) for p, g in zip(preds, gts)]
    inter = np.stack([c[0] for c in counts])
    union = np.stack([c[1] for c in counts])
    gt = np.stack([c[2] for c in counts])
    si, su, sg = inter.sum(0), union.sum(0), gt.sum(0)
    miou = 100 * np.mean([si[c] / su[c] for c in range(k) if su[c] > 0])
    macc = 100 * np.mean([si[c] / sg[c] for c in range(k) if sg[c] > 0])
    aacc = 100 * si.sum() / sg.sum()
    assert su[3] > 0 and sg[3] == 0 and su[4] == 0

    ds = _seg_set(tmp_path, [np.where(g < 0, 255, g) for g in gts], k, 255, False)
    monkeypatch.setattr(seg_probe, "load_sets", lambda name, root: (ds, ds))
    monkeypatch.setattr("harness.core.checkpoints.load_backbone", lambda path: torch.nn.Identity())
    monkeypatch.setattr(seg_probe.SegProbe, "_train_cells",
                        lambda self, net, d, cfg, device: (torch.zeros(3, k), torch.tensor([0, 1, 2]),
                                                           torch.zeros(3, dtype=torch.long)))
    sweep = logreg.SweepResult(1.0, 0, logreg.LinearHead(torch.eye(k), torch.zeros(k)), [1.0], [0.0], [0.0])
    monkeypatch.setattr(seg_probe.SegProbe, "_fit", lambda self, x, y, owner, n, cfg, ctx: (sweep.head, sweep))
    _patch_features(monkeypatch, preds, k)
    from harness.api import TaskContext

    cfg = {"dataset": "voc", "short_side": 6, "levels": ["layer1"], "l2_grid": {}, "max_iter": 1, "tol": 1e-4,
           "val_size": 0.2, "split_seed": 0, "stride": 1, "max_cells": 10}
    ctx = TaskContext(name="seg_probe", cfg=cfg, workdir=tmp_path / "w", data_root=tmp_path, seed=0, device="cpu",
                      preset="tiny", task="seg_probe", backbone=tmp_path / "backbone.pth")
    result = seg_probe.SegProbe().run(ctx)
    assert result.metrics["mIoU"] == pytest.approx(miou, rel=1e-12)
    assert result.metrics["mAcc"] == pytest.approx(macc, rel=1e-12)
    assert result.metrics["aAcc"] == pytest.approx(aacc, rel=1e-12)
    assert result.higher_is_better == {"mIoU": True, "mAcc": True, "aAcc": True}
    result.samples.check_against(result.metrics)
    assert result.samples.sizes == {"test": 4}


# ---------------------------------------------------------------- background shift
def test_bg_shift_metrics_gap_sign_and_paired_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cls_task_fixtures import write_bg_challenge
    from harness.tasks import bg_shift

    root = write_bg_challenge(tmp_path / "data", n_train=2, n_val=4)
    # each variant's share of correctly classified items (the stub probe's predictions)
    right = {"original": 1.0, "only_fg": 0.75, "mixed_same": 0.5, "mixed_rand": 0.25}

    def extract(ds, fingerprint, spec):
        variant = Path(ds.root).parts[-2]
        y = torch.tensor([label for _, label in ds.samples])
        ok = torch.tensor([float(i % 4 < 4 * right.get(variant, 1.0)) for i in range(len(y))])
        return Features(ok[:, None], y)

    class Probe:
        def predict(self, feats: Features) -> torch.Tensor:
            return torch.where(feats.x[:, 0] > 0, feats.y, (feats.y + 1) % 3)

        def summary(self) -> dict:
            return {}

    monkeypatch.setattr(bg_shift, "probe_with_seeded_val", lambda feats, n, cfg, device: Probe())
    res = bg_shift.evaluate_bg_shift(extract, root, {}, "cpu")
    assert res.metrics == pytest.approx({"acc_original": 100.0, "acc_only_fg": 75.0, "acc_mixed_same": 50.0,
                                         "acc_mixed_rand": 25.0, "bg_gap": 25.0})
    assert res.higher_is_better == {"acc_original": True, "acc_only_fg": True, "acc_mixed_same": True,
                                    "acc_mixed_rand": True, "bg_gap": False}
    table = res.samples
    table.check_against(res.metrics)
    assert table.metric_groups("bg_gap") == [table.metrics["acc_mixed_same"]["group"]]  # one group: paired
    assert len(table.groups) == 1
    # the gap of a resample is the difference on the same drawn foregrounds
    draw = {g: np.array([[0, 0, 1, 1, 4, 4, 5, 5, 8, 8, 9, 9]]) for g in table.groups}
    same = table.statistic("acc_mixed_same")(draw)
    rand = table.statistic("acc_mixed_rand")(draw)
    assert table.statistic("bg_gap")(draw) == pytest.approx(same - rand)
    assert bg_shift.bg_gap({"mixed_same": 30.0, "mixed_rand": 45.0}) == pytest.approx(-15.0)


def test_variant_table_keeps_variants_with_other_items_apart() -> None:
    from harness.tasks.bg_shift import variant_table

    class Set:
        def __init__(self, ids: list[str]) -> None:
            self.ids = ids

        def item_ids(self) -> list[str]:
            return self.ids

    sets = {"mixed_same": Set(["a", "b"]), "mixed_rand": Set(["c", "d"])}
    preds = {"mixed_same": torch.tensor([0, 1]), "mixed_rand": torch.tensor([0, 0])}
    labels = {"mixed_same": torch.tensor([0, 1]), "mixed_rand": torch.tensor([0, 1])}
    t = variant_table(sets, preds, labels)
    assert len(t.groups) == 2 and t.value("bg_gap") == pytest.approx(50.0)
    assert t.metric_groups("bg_gap") == ["mixed_rand", "mixed_same"]


# ---------------------------------------------------------------- distribution shift
def test_shift_scores_report_shifted_minus_clean() -> None:
    from harness.tasks.dist_shift import ShiftScores

    class Probe:
        def __init__(self, pred: list[int]) -> None:
            self.pred = torch.tensor(pred)

        def predict(self, feats: Features) -> torch.Tensor:
            return self.pred

    class Set:
        def __init__(self, n: int, name: str) -> None:
            self.ids = [f"{name}/{i}" for i in range(n)]

        def item_ids(self) -> list[str]:
            return self.ids

    y = torch.tensor([0, 1, 2, 0])
    s = ShiftScores()
    shifted = s.score("objectnet_9", Probe([0, 0, 0, 0]), Features(torch.zeros(4, 1), y), Set(4, "o"))
    clean = s.score("coco_crop_9_val", Probe([0, 1, 2, 1]), Features(torch.zeros(4, 1), y), Set(4, "c"))
    assert (shifted, clean) == (pytest.approx(50.0), pytest.approx(75.0))
    s.add_head("coco_crop_9", clean, {"objectnet_9": shifted})
    assert s.metrics == pytest.approx({"clean_coco_crop_9": 75.0, "objectnet_9": 50.0,
                                       "objectnet_9_minus_clean": -25.0})
    table = s.table()
    table.check_against(s.metrics)
    assert table.sizes == {"objectnet_9": 4, "clean_coco_crop_9": 4}


# ---------------------------------------------------------------- CAM localization
def _plain_box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def test_box_and_mask_iou_match_plain_formulas() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = sorted(rng.random(2)), sorted(rng.random(2))
        b = sorted(rng.random(2)), sorted(rng.random(2))
        ba, bb = (a[0][0], a[1][0], a[0][1], a[1][1]), (b[0][0], b[1][0], b[0][1], b[1][1])
        assert camloc.box_iou(ba, bb) == pytest.approx(_plain_box_iou(ba, bb), abs=1e-12)
        assert camloc.box_iou(ba, bb) == pytest.approx(camloc.box_iou(bb, ba), abs=1e-12)
    assert camloc.box_iou((0, 0, 1, 1), (0, 0.5, 1, 1.5)) == pytest.approx(1 / 3)
    assert camloc.box_iou((0, 0, 1, 1), (1, 0, 2, 1)) == 0.0  # touching boxes do not overlap
    for _ in range(50):
        p, g = rng.random((6, 5)) < 0.4, rng.random((6, 5)) < 0.5
        assert camloc.mask_iou(p, g) == pytest.approx(np.sum(p & g) / np.sum(p | g))
    empty = np.zeros((3, 3), bool)
    assert camloc.mask_iou(empty, empty) == 1.0 and camloc.mask_iou(empty, ~empty) == 0.0


def test_found_boxes_counts_ground_truth_at_or_above_the_threshold() -> None:
    gt = [(0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 0.2, 0.2), (0.5, 0.5, 0.9, 0.9)]
    half = [(0.0, 0.0, 0.5, 1.0)]  # IoU exactly 0.5 with the first box, 0.08 with the second
    assert camloc.found_boxes(gt, half, 0.5) == 1
    assert camloc.found_boxes(gt, half, 0.51) == 0
    assert camloc.found_boxes(gt, half + [(0.0, 0.0, 0.2, 0.2)], 0.5) == 2
    # one predicted box may find several ground-truth boxes; each ground-truth box counts once
    assert camloc.found_boxes([(0, 0, 1, 1), (0, 0, 1, 1)], [(0, 0, 1, 1), (0, 0, 1, 0.9)], 0.5) == 2
    assert camloc.found_boxes([], half, 0.5) == 0


def test_foreground_box_is_normalised_and_inclusive() -> None:
    m = np.zeros((8, 10), bool)
    m[1, 2] = m[5, 7] = True
    assert camloc.foreground_box(m) == [pytest.approx((0.2, 1 / 8, 0.8, 6 / 8))]
    m = np.ones((4, 4), bool)
    assert camloc.foreground_box(m) == [(0.0, 0.0, 1.0, 1.0)]


@pytest.mark.parametrize("threshold, binarize", [(0.5, "soft"), (0.3, "soft"), (0.5, "official")])
def test_cam_evaluation_averages_iou_and_pools_box_recall(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                          threshold: float, binarize: str) -> None:
    from harness.cam import boxes, infer

    size = 8
    rng = np.random.default_rng(2)
    softs = [np.round(rng.random((size, size)), 1) for _ in range(3)]  # values on 0.1 steps, 0.5 and 0.3 included
    softs[2][:] = 0.0  # an empty prediction
    gts = [rng.random((size, size)) < 0.5, np.zeros((size, size), bool), rng.random((size, size)) < 0.3]
    truth_boxes = [[(0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0), (0.0, 0.5, 0.5, 1.0)], [], [(0.2, 0.2, 0.6, 0.6)]]
    predicted = [[(0.0, 0.0, 0.5, 0.55)], [(0.1, 0.1, 0.3, 0.3)], [(0.2, 0.2, 0.6, 0.62)]]
    items = [camloc.GroundTruth(tmp_path / f"{i}.jpg", gts[i], truth_boxes[i]) for i in range(3)]

    def batches(model, paths, size_, batch_size, iterations, device):
        for start in range(0, len(paths), batch_size):
            part = softs[start:start + batch_size]
            yield infer.CamBatch(start, np.stack(part), np.zeros((len(part), size_, size_, 3), np.uint8))

    queue = iter(predicted)
    monkeypatch.setattr(infer, "cam_batches", batches)
    monkeypatch.setattr(boxes, "keep_large_components", lambda mask, min_area: mask)
    monkeypatch.setattr(boxes, "mask_to_boxes", lambda mask, margin=0.0, **_: next(queue))
    cfg = camloc.LocalizationConfig(image_size=size, batch_size=2, crf=False, mask_threshold=threshold,
                                    binarize=binarize)
    out = camloc.evaluate(None, items, cfg, "cpu")
    ious = []
    for soft, g in zip(softs, gts):
        p = soft > 0 if binarize == "official" else soft > threshold
        union = np.sum(p | g)
        ious.append(1.0 if union == 0 else np.sum(p & g) / union)
    assert out["iou"].tolist() == pytest.approx(ious)
    assert out["mask_miou"] == pytest.approx(100 * np.mean(ious))
    assert out["found"].tolist() == [1, 0, 1] and out["boxes"].tolist() == [3, 0, 1]
    assert out["box_recall"] == pytest.approx(100 * 2 / 4)  # pooled over boxes, not a mean of images


# ---------------------------------------------------------------- task wiring
def _class_set(root: Path, labels: list[int], n_classes: int, name: str):
    from harness.data.image_sets import ClassificationSet

    return ClassificationSet(name, root, [f"c{k}" for k in range(n_classes)],
                             [(root / f"c{y}" / f"{i}.png", y) for i, y in enumerate(labels)])


def _stub_extraction(monkeypatch: pytest.MonkeyPatch, feats: dict[str, Features]) -> Any:
    """Features by set name, no image read; fingerprints from the names."""
    from harness.tasks import cls_common

    monkeypatch.setattr(cls_common, "fingerprints", lambda sets: {k: f"print-{k}" for k in sets})
    return lambda ds, fingerprint, spec: feats[ds.name]


@pytest.mark.parametrize("cfg, k, temperature", [({}, 20, 0.07), ({"k": 3, "temperature": 0.5}, 3, 0.5)])
def test_knn_task_votes_with_its_configured_k_and_temperature(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                              cfg: dict, k: int, temperature: float) -> None:
    from harness.api import TaskContext
    from harness.data.registry import ProbeSplits
    from harness.tasks import cls_common
    from harness.tasks.knn import Knn

    tx, ty, qx, qy = _knn_dense_data()
    feats = {"tr": Features(torch.tensor(tx, dtype=torch.float32), torch.tensor(ty)),
             "te": Features(torch.tensor(qx, dtype=torch.float32), torch.tensor(qy))}
    splits = ProbeSplits("toy", _class_set(tmp_path, ty.tolist(), 4, "tr"), _class_set(tmp_path, qy.tolist(), 4, "te"),
                         None, "top1")
    ex = _stub_extraction(monkeypatch, feats)
    monkeypatch.setattr(cls_common, "probe_splits_of", lambda ctx: splits)
    monkeypatch.setattr(cls_common, "extractor", lambda ctx: ex)
    ctx = TaskContext(name="knn", cfg=cfg, workdir=tmp_path, data_root=tmp_path, seed=0, device="cpu", preset="tiny",
                      task="knn", backbone=tmp_path / "b.pth")
    result = Knn().run(ctx)
    want = np.array(_plain_knn(tx.astype(np.float32).astype(np.float64), ty, qx.astype(np.float32).astype(np.float64),
                               4, k, temperature))
    assert result.metrics == {"knn_top1": pytest.approx(100.0 * np.mean(want == qy))}
    assert result.higher_is_better == {"knn_top1": True}
    assert result.extra == {"k": k, "temperature": temperature}
    group = result.samples.groups["test"]
    assert group.arrays["correct"].tolist() == (want == qy).astype(int).tolist()
    assert group.arrays["label"].tolist() == qy.tolist() and len(group.ids) == 40
    result.samples.check_against(result.metrics)


def test_linear_probe_scores_the_test_split_with_every_requested_metric(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    from cls_task_fixtures import gaussian_features
    from harness.data.registry import ProbeSplits
    from harness.tasks.linear_probe import probe_splits

    train = gaussian_features(25, 0, sep=2.0, dim=8)
    test = gaussian_features(12, 1, sep=2.0, dim=8)
    keep = torch.cat([torch.arange(0, 12), torch.arange(12, 16), torch.arange(24, 30), torch.arange(36, 48)])
    test = test.subset(keep)  # unbalanced classes: top-1 and mean-per-class differ
    splits = ProbeSplits("toy", _class_set(tmp_path, train.y.tolist(), 4, "tr"),
                         _class_set(tmp_path, test.y.tolist(), 4, "te"), None, "top1")
    ex = _stub_extraction(monkeypatch, {"tr": train, "te": test})
    cfg = {"l2_grid": {"start": -2, "stop": 2, "num": 3}, "max_iter": 50, "val_size": 0.2,
           "extra_metrics": ["mean_per_class"]}
    result = probe_splits(ex, splits, cfg, "cpu")
    assert set(result.metrics) == {"top1", "mean_per_class"}
    grp = result.samples.groups["test"]
    correct, label = grp.arrays["correct"].astype(float), grp.arrays["label"]
    assert label.tolist() == test.y.tolist()  # scored on the test split
    assert result.metrics["top1"] == pytest.approx(100 * correct.mean())
    mpc = 100 * np.mean([correct[label == c].mean() for c in np.unique(label)])
    assert result.metrics["mean_per_class"] == pytest.approx(mpc)
    assert result.dataset["sizes"]["probe_train"] == 80 and result.dataset["sizes"]["probe_val"] == 20
    assert result.extra["metric"] == "top1" and result.extra["refit"] is True
    assert result.extra["val_score"] == result.extra["val_scores"][result.extra["l2_grid"].index(result.extra["best_l2"])]


def test_fit_minimises_the_stated_objective() -> None:
    from scipy.optimize import minimize

    g = torch.Generator().manual_seed(0)
    n, d, k, l2 = 40, 3, 3, 5.0
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.arange(n) % k
    x[:, 0] += y.double()
    xn, yn = x.numpy(), y.numpy()

    def objective(theta: np.ndarray) -> float:
        w, b = theta[:k * d].reshape(k, d), theta[k * d:]
        z = xn @ w.T + b
        z = z - z.max(axis=1, keepdims=True)
        ce = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(n), yn])
        return float(ce + l2 / (2 * n) * np.sum(w ** 2))

    ref = minimize(objective, np.zeros(k * d + k), method="BFGS", options={"gtol": 1e-10}).x
    head, _ = logreg.fit(x, y, k, l2, max_iter=500, tol=1e-10)
    theta = np.concatenate([head.weight.numpy().ravel(), head.bias.numpy()])
    assert objective(theta) == pytest.approx(objective(ref), abs=1e-9)
    # the penalised weights are unique; the unpenalised bias only up to a common shift
    w_ref = ref[:k * d].reshape(k, d)
    assert np.allclose(head.weight.numpy(), w_ref, atol=1e-4)


def test_seg_head_folds_the_standardisation_and_never_predicts_absent_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    fits: list[logreg.LinearHead] = []
    real_fit = logreg.fit

    def recording_fit(*args: Any, **kwargs: Any):
        head, n = real_fit(*args, **kwargs)
        fits.append(head)
        return head, n

    monkeypatch.setattr(logreg, "fit", recording_fit)
    g = torch.Generator().manual_seed(1)
    n_classes = 5
    y = torch.tensor([0, 2, 4] * 12)  # classes 1 and 3 absent
    x = torch.randn(36, 4, generator=g) * torch.tensor([1.0, 10.0, 0.1, 3.0]) + torch.tensor([5.0, -2.0, 0.0, 1.0])
    x[:, 0] += y.float()
    owner = torch.arange(36) // 4
    cfg = _seg_cfg(6)
    cfg = seg_probe.SegProbeConfig(**{**cfg.__dict__, "l2_grid": {"start": -1, "stop": 1, "num": 2}, "max_iter": 30})

    class Ctx:
        device = "cpu"

    head, _ = seg_probe.SegProbe()._fit(x, y, owner, n_classes, cfg, Ctx())
    fitted = fits[-1]  # the refit on every cell, in standardised space
    mean, std = x.mean(0), x.std(0)
    want = fitted.logits((x - mean) / std)
    got = head.logits(x)
    assert torch.allclose(got[:, [0, 2, 4]], want, atol=1e-4)
    assert torch.isinf(got[:, [1, 3]]).all() and (got[:, [1, 3]] < 0).all()
    assert set(head.predict(torch.randn(50, 4, generator=g) * 20).tolist()) <= {0, 2, 4}
