"""ORL stage 2 pinned against plain references: box geometry, proposal filter, jitter,
nearest-neighbour and RoI-pair retrieval, the embedding store, the embeddings and the
correspondence files, on small inputs with known answers (identical objects must be
paired, members of a cluster must be each other's neighbours)."""
from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from harness_methods.orl import correspondence
from harness_methods.orl.artifacts import Correspondence
from harness_methods.orl.boxes import filter_proposals, iou_one_to_many, iou_pairwise, jitter_box
from harness_methods.orl.correspondence import CorrespondenceConfig, build_correspondence, nearest_images, roi_pairs
from harness_methods.orl.retrieval import knn_search, pair_count, top_pairs
from harness_methods.orl.roi_store import RoIEmbeddingStore

torch.set_num_threads(2)


# ---------------------------------------------------------------- plain references
def ref_iou(a, b) -> float:
    """IoU of two (x, y, w, h) boxes."""
    ax0, ay0, ax1, ay1 = a[0], a[1], a[0] + a[2], a[1] + a[3]
    bx0, by0, bx1, by1 = b[0], b[1], b[0] + b[2], b[1] + b[3]
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def ref_filter(boxes, image_size, min_size, max_aspect, iou_thr, top_n) -> list[list[int]]:
    if len(boxes) == 0:
        return [[0, 0, image_size[0], image_size[1]]]
    kept = []
    for b in boxes:
        x, y, w, h = (int(v) for v in b)
        if w <= 0 or h <= 0:
            continue
        if min_size and (w < min_size or h < min_size):
            continue
        if max_aspect and (w > max_aspect * h or h > max_aspect * w):
            continue
        if top_n and len(kept) >= top_n:
            break
        if iou_thr is not None and any(ref_iou((x, y, w, h), k) > iou_thr for k in kept):
            continue
        kept.append([x, y, w, h])
    return kept or [[int(v) for v in boxes[0]]]


def ref_jitter(box, size, rng: random.Random, shift, scale, ratio, iou_thr, attempts):
    """Shift the centre by a fraction of w/h, scale the area, draw the aspect
    log-uniformly, accept inside the image with IoU strictly above the bound."""
    x, y, w, h = box
    for _ in range(attempts):
        area = rng.uniform(*scale) * w * h
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        nw, nh = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        cx = x + w / 2 + rng.uniform(*shift) * w
        cy = y + h / 2 + rng.uniform(*shift) * h
        nx, ny = int(round(cx - nw / 2)), int(round(cy - nh / 2))
        if nw < 1 or nh < 1 or nx < 0 or ny < 0 or nx + nw > size[0] or ny + nh > size[1]:
            continue
        if iou_thr is None or ref_iou(box, (nx, ny, nw, nh)) > iou_thr:
            return nx, ny, nw, nh
    return tuple(box)


def _random_boxes(rng: np.random.Generator, n: int, width: int, height: int) -> np.ndarray:
    x = rng.integers(0, width - 4, n)
    y = rng.integers(0, height - 4, n)
    w = np.minimum(rng.integers(1, width // 2, n), width - x)
    h = np.minimum(rng.integers(1, height // 2, n), height - y)
    return np.stack([x, y, w, h], 1)


# ---------------------------------------------------------------- box geometry
def test_iou_matches_reference_in_xywh():
    rng = np.random.default_rng(0)
    a, b = _random_boxes(rng, 30, 120, 80), _random_boxes(rng, 25, 120, 80)
    want = np.array([[ref_iou(p, q) for q in b] for p in a])
    np.testing.assert_allclose(iou_pairwise(a, b), want, atol=1e-12)
    for i in range(len(a)):
        np.testing.assert_allclose(iou_one_to_many(a[i], b), want[i], atol=1e-12)
    # (x, y, w, h): a box 10 wide at x = 30 does not reach x = 41
    assert iou_one_to_many(np.array([30, 0, 10, 10]), np.array([[41, 0, 10, 10]]))[0] == 0.0
    assert iou_one_to_many(np.array([0, 0, 0, 0]), np.array([[0, 0, 0, 0]]))[0] == 0.0


def test_filter_proposals_matches_reference():
    rng, pick = np.random.default_rng(1), random.Random(1)
    for trial in range(60):
        boxes = _random_boxes(rng, int(rng.integers(0, 40)), 200, 150)
        if trial % 7 == 0 and len(boxes):
            boxes[0, 2] = 0  # a degenerate proposal
        params = dict(min_size=pick.choice([None, 8, 30]), max_aspect=pick.choice([None, 2.0, 3.0]),
                      iou_thr=pick.choice([None, 0.3, 0.5]), top_n=pick.choice([None, 5, 100]))
        got = filter_proposals(boxes, (200, 150), **params)
        assert got.dtype == np.int32
        assert got.tolist() == ref_filter(boxes, (200, 150), **params), params


def test_filter_proposals_boundaries():
    keep = dict(min_size=None, max_aspect=None, iou_thr=None, top_n=None)
    sizes = np.array([[0, 0, 20, 20], [50, 0, 19, 40], [0, 50, 40, 19]])
    assert filter_proposals(sizes, (200, 200), **{**keep, "min_size": 20}).tolist() == [[0, 0, 20, 20]]
    aspects = np.array([[0, 0, 30, 10], [0, 0, 10, 30], [0, 0, 31, 10], [0, 0, 10, 31]])
    assert filter_proposals(aspects, (200, 200), **{**keep, "max_aspect": 3.0}).tolist() == [[0, 0, 30, 10],
                                                                                              [0, 0, 10, 30]]
    # IoU exactly at the bound is kept; above it is a duplicate
    half = np.array([[0, 0, 10, 10], [0, 0, 20, 10], [0, 0, 10, 12]])
    assert filter_proposals(half, (50, 50), **{**keep, "iou_thr": 0.5}).tolist() == [[0, 0, 10, 10],
                                                                                       [0, 0, 20, 10]]
    # duplicates are judged against KEPT boxes only: C overlaps the dropped B, not the kept A
    chain = np.array([[0, 0, 50, 50], [10, 0, 50, 50], [25, 0, 50, 50]])
    assert filter_proposals(chain, (100, 100), **{**keep, "iou_thr": 0.5}).tolist() == [[0, 0, 50, 50],
                                                                                          [25, 0, 50, 50]]
    # top_n counts kept boxes, in the proposals' own order
    ranked = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [40, 40, 10, 10], [70, 0, 10, 10]])
    assert filter_proposals(ranked, (100, 100), **{**keep, "iou_thr": 0.5, "top_n": 2}).tolist() == [
        [0, 0, 10, 10], [40, 40, 10, 10]]
    # nothing survives: the first raw proposal; no proposal: the whole (width, height) image
    assert filter_proposals(np.array([[3, 4, 5, 6], [0, 0, 2, 2]]), (64, 48), min_size=20, max_aspect=None,
                            iou_thr=None, top_n=None).tolist() == [[3, 4, 5, 6]]
    assert filter_proposals(np.zeros((0, 4)), (64, 48), **keep).tolist() == [[0, 0, 64, 48]]


def test_jitter_box_matches_reference_draw_for_draw():
    rng = np.random.default_rng(2)
    settings = [dict(shift=(-0.5, 0.5), scale=(0.5, 2.0), ratio=(0.5, 2.0), iou_thr=0.5, attempts=200),
                dict(shift=(-0.3, 0.1), scale=(0.7, 1.6), ratio=(0.8, 1.5), iou_thr=0.3, attempts=20),
                dict(shift=(-0.5, 0.5), scale=(0.5, 2.0), ratio=(0.5, 2.0), iou_thr=None, attempts=5)]
    moved = 0
    for trial in range(150):
        size = (int(rng.integers(60, 300)), int(rng.integers(60, 300)))
        w, h = int(rng.integers(5, size[0] // 2)), int(rng.integers(5, size[1] // 2))
        box = (int(rng.integers(0, size[0] - w)), int(rng.integers(0, size[1] - h)), w, h)
        kw = settings[trial % 3]
        got = jitter_box(box, size, random.Random(trial), **kw)
        want = ref_jitter(box, size, random.Random(trial), **kw)
        assert tuple(got) == tuple(want), (box, size, kw)
        moved += tuple(got) != box
    assert moved > 120


def test_jitter_box_ranges_follow_the_settings():
    """Far from the borders and without an IoU bound, the draws span the whole ranges."""
    rng = random.Random(0)
    box = (1000, 1000, 100, 50)
    areas, aspects, dx, dy = [], [], [], []
    for _ in range(1500):
        x, y, w, h = jitter_box(box, (3000, 3000), rng, iou_thr=None)
        areas.append(w * h / 5000)
        aspects.append(w / h)
        dx.append((x + w / 2 - 1050) / 100)
        dy.append((y + h / 2 - 1025) / 50)
    assert 0.48 <= min(areas) < 0.55 and 1.9 < max(areas) <= 2.06
    assert 0.48 <= min(aspects) < 0.56 and 1.85 < max(aspects) <= 2.06
    assert -0.51 <= min(dx) < -0.45 and 0.45 < max(dx) <= 0.51
    assert -0.52 <= min(dy) < -0.45 and 0.45 < max(dy) <= 0.52
    assert abs(float(np.mean(np.log(aspects)))) < 0.05  # log-uniform around 1


def test_jitter_box_iou_bound_is_strict_and_inside_the_image():
    rng = random.Random(3)
    size = (90, 60)
    for _ in range(300):
        box = (rng.randint(0, 60), rng.randint(0, 40), rng.randint(10, 30), rng.randint(10, 20))
        box = (box[0], box[1], min(box[2], size[0] - box[0]), min(box[3], size[1] - box[1]))
        out = jitter_box(box, size, rng, iou_thr=0.6)
        x, y, w, h = out
        assert x >= 0 and y >= 0 and x + w <= size[0] and y + h <= size[1]
        assert tuple(out) == box or ref_iou(box, out) > 0.6


# ---------------------------------------------------------------- retrieval
def _clusters(n_clusters: int, size: int, dim: int = 16, noise: float = 0.02, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(n_clusters, dim, generator=g), dim=1)
    feats = centres.repeat_interleave(size, 0) + noise * torch.randn(n_clusters * size, dim, generator=g)
    return F.normalize(feats, dim=1)


def test_knn_retrieves_the_other_members_of_each_cluster_nearest_first():
    feats = _clusters(7, 4)
    perm = torch.randperm(28, generator=torch.Generator().manual_seed(1))
    feats = feats[perm]
    cluster = (perm // 4).numpy()
    for max_elements in (1 << 20, 50):
        idx, sim = knn_search(feats, 3, max_elements=max_elements)
        for i in range(28):
            assert set(idx[i].tolist()) == set(np.nonzero(cluster == cluster[i])[0].tolist()) - {i}
            want = (feats[idx[i]] @ feats[i]).numpy()
            np.testing.assert_allclose(sim[i].numpy(), want, rtol=1e-5, atol=1e-6)
            assert (np.diff(sim[i].numpy()) <= 1e-7).all()
        # neighbourhoods are mutual: j in N(i) <=> i in N(j)
        pairs = {(i, int(j)) for i in range(28) for j in idx[i]}
        assert all((j, i) in pairs for i, j in pairs)
    # without self exclusion each row's best match is itself
    idx, sim = knn_search(feats, 4, exclude_self=False)
    assert (idx[:, 0] == torch.arange(28)).all() and torch.allclose(sim[:, 0], torch.ones(28), atol=1e-5)


def test_top_pairs_pair_identical_objects_and_ignore_padding():
    """Each neighbour holds the query's objects (slightly perturbed) in another order, plus
    other RoIs: the top ``pair_count`` pairs are exactly the same objects. Padding rows past
    the RoI counts hold exact copies (a perfect match) and must never be used."""
    g = torch.Generator().manual_seed(0)
    p, d = 7, 12
    objects = F.normalize(torch.randn(4, d, generator=g), dim=1)
    query = torch.zeros(2, p, d)
    query[0, :4] = objects
    query[1, :5] = F.normalize(torch.randn(5, d, generator=g), dim=1)
    query[1, :4] = objects.flip(0)
    keys = F.normalize(torch.randn(2, 2, p, d, generator=g), dim=-1)
    order = [[2, 0, 3, 1], [1, 3, 0, 2]]
    for i in range(2):
        for j in range(2):
            noisy = F.normalize(query[i, :4] + 0.05 * torch.randn(4, d, generator=g), dim=1)
            keys[i, j, [x + 1 for x in order[j]]] = noisy
    qn, kn = torch.tensor([4, 5]), torch.tensor([[6, 6], [5, 6]])
    keys[0, 0, 6] = query[0, 2]   # padding of a neighbour: an exact copy
    keys[1, 0, 5] = query[1, 1]
    query[0, 5] = keys[0, 1, 0]   # padding of the query image: an exact copy
    couple, qi, ki, val = top_pairs(query, qn, keys, kn, ratio=0.8)
    assert (qi < qn[couple // 2]).all() and (ki < kn.reshape(-1)[couple]).all()
    for c in range(4):
        i, j = divmod(c, 2)
        sel = couple == c
        assert int(sel.sum()) == pair_count(int(qn[i]), 0.8) == int(0.8 * int(qn[i]))
        for a, b in zip(qi[sel].tolist(), ki[sel].tolist()):
            assert a < 4 and b == order[j][a] + 1  # query RoI a and its copy in the neighbour
        assert (val[sel] > 0.9).all() and (val[sel].diff() <= 0).all()


# ---------------------------------------------------------------- the embedding store and RoI pairs
def _store(tmp_path: Path, counts: list[int], dim: int = 8, chunk: int = 2, seed: int = 0
           ) -> tuple[RoIEmbeddingStore, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    emb = [rng.normal(size=(c, dim)).astype(np.float32) for c in counts]
    emb = [e / np.linalg.norm(e, axis=1, keepdims=True) for e in emb]
    store = RoIEmbeddingStore(tmp_path / "roi_emb", counts, chunk, manifest={"model": "m"})
    store.fill(lambda r: [emb[i] for i in r], "float32")
    return store, emb


def test_store_gathers_padded_embeddings_across_chunks(tmp_path):
    counts = [3, 1, 4, 2, 3]
    store, emb = _store(tmp_path, counts)
    idx = np.array([[4, 0], [2, 2], [1, 3]])
    got = store.gather(idx)
    assert got.shape == (3, 2, 4, 8)
    for pos in np.ndindex(idx.shape):
        i = idx[pos]
        np.testing.assert_array_equal(got[pos][:counts[i]], emb[i])
        assert not got[pos][counts[i]:].any()
    calls = []
    again = RoIEmbeddingStore(tmp_path / "roi_emb", counts, 2, manifest={"model": "m"})
    assert again.fill(lambda r: calls.append(r) or [emb[i] for i in r], "float32") == 0 and not calls
    other = RoIEmbeddingStore(tmp_path / "roi_emb", counts, 2, manifest={"model": "other"})
    assert other.missing_chunks() == [0, 1, 2]  # another manifest discards the chunks


def ref_roi_pairs(emb, rois, neighbors, ratio):
    """Per (image, neighbour): all (own RoI, neighbour RoI) pairs by decreasing cosine,
    the first ``max(1, int(ratio * own RoIs))``."""
    offsets, q, k, s = [0], [], [], []
    for i in range(len(emb)):
        for j in neighbors[i]:
            cands = sorted(((float(emb[i][a] @ emb[j][b]), a, b) for a in range(len(emb[i]))
                            for b in range(len(emb[j]))), key=lambda t: -t[0])
            take = cands[:max(1, int(ratio * len(emb[i])))]
            q += [rois[i][a] for _, a, _ in take]
            k += [rois[j][b] for _, _, b in take]
            s += [v for v, _, _ in take]
            offsets.append(offsets[-1] + len(take))
    return np.array(offsets), np.array(q), np.array(k), np.array(s)


@pytest.mark.parametrize("max_elements", [1 << 24, 300])
def test_roi_pairs_match_the_reference_and_land_on_the_right_images(tmp_path, max_elements):
    counts = [3, 1, 4, 2, 5]
    store, emb = _store(tmp_path, counts)
    rois = [np.array([[10 * i + r, r, 5 + i, 6 + r] for r in range(c)], dtype=np.int32) for i, c in enumerate(counts)]
    flat = np.concatenate(rois)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    neighbors = np.array([[2, 4], [0, 3], [4, 1], [1, 2], [3, 0]])
    got = roi_pairs(store, flat, offsets, neighbors, 0.5, "cpu", max_elements=max_elements)
    want = ref_roi_pairs(emb, rois, neighbors, 0.5)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])
    np.testing.assert_allclose(got[3], want[3], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- kNN stage step and the whole stage
def test_nearest_images_uses_cosine_neighbours_and_caches_them(tmp_path, monkeypatch):
    feats = _clusters(4, 3, seed=2)
    cfg = CorrespondenceConfig(k=2, knn_resize=40, knn_crop=32)
    seen = {}

    def fake_embeddings(backbone, projector, paths, *, resize, crop, **kw):
        seen.update(resize=resize, crop=crop, n=len(paths))
        return feats

    monkeypatch.setattr(correspondence, "image_embeddings", fake_embeddings)
    names = [f"img{i}.png" for i in range(12)]
    paths = [tmp_path / n for n in names]
    nb, sim = nearest_images(None, None, paths, names, tmp_path, cfg, "cpu", model_id="a")
    assert seen == {"resize": 40, "crop": 32, "n": 12}
    assert nb.shape == (12, 2) and nb.dtype == np.int32
    for i in range(12):
        assert set(nb[i].tolist()) == {3 * (i // 3) + r for r in range(3)} - {i}
        np.testing.assert_allclose(sim[i], (feats[nb[i]] @ feats[i]).numpy(), rtol=1e-5)

    def no_embeddings(*a, **kw):
        raise AssertionError("recomputed")

    monkeypatch.setattr(correspondence, "image_embeddings", no_embeddings)
    again, _ = nearest_images(None, None, paths, names, tmp_path, cfg, "cpu", model_id="a")
    np.testing.assert_array_equal(again, nb)
    with pytest.raises(AssertionError, match="recomputed"):  # another stage-1 model: recomputed
        nearest_images(None, None, paths, names, tmp_path, cfg, "cpu", model_id="b")
    from harness.core.errors import ConfigError

    with pytest.raises(ConfigError):
        nearest_images(None, None, paths[:2], names[:2], tmp_path / "x", cfg, "cpu")


SIZE = (120, 80)  # (width, height) of every image


def _scene_proposals(i: int) -> tuple[np.ndarray, dict[tuple[int, ...], int]]:
    """Raw proposals of image ``i`` and the class of each box that survives the filter.

    Images ``3c, 3c+1, 3c+2`` form cluster ``c`` and share object class ``100 + c``; each
    image also has two objects of classes of its own. Clutter: a tiny box, an elongated
    box and a near duplicate of the first object."""
    cluster = i // 3
    objects = [((5 + 3 * (i % 3), 5, 30, 25), 100 + cluster),
               ((50, 10 + 2 * i, 25, 30), 10 * i + 1),
               ((80, 40, 30, 30), 10 * i + 2)]
    clutter = [(0, 0, 6, 6), (10, 60, 90, 12), (6 + 3 * (i % 3), 6, 30, 25)]
    order = [objects[0], clutter[0], objects[1], clutter[1], clutter[2], objects[2]]
    boxes = np.array([b if isinstance(b[0], int) else b[0] for b in order], dtype=np.int32)
    return boxes, {tuple(int(v) for v in b): c for b, c in objects}


def test_build_correspondence_pairs_shared_objects_of_neighbour_images(tmp_path, monkeypatch):
    n, dim = 9, 64
    cfg = CorrespondenceConfig(k=2, knn_resize=40, knn_crop=32, min_size=10, max_aspect=3.0, iou_thr=0.5,
                               top_n=10, roi_size=16, roi_chunk_size=4, roi_dtype="float32", pair_ratio=0.34,
                               ss_workers=1)
    names = [f"coco/train2017/{i:03d}.png" for i in range(n)]
    paths = [tmp_path / "data" / name for name in names]
    g = torch.Generator().manual_seed(0)
    class_code = F.normalize(torch.randn(200, dim, generator=g), dim=1)
    image_feats = _clusters(3, 3, seed=5)
    embedded: list[list[tuple[int, ...]]] = []

    def fake_image_embeddings(backbone, projector, image_paths, **kw):
        assert list(image_paths) == paths
        return image_feats

    def fake_roi_embeddings(backbone, image_paths, boxes, **kw):
        assert kw["size"] == 16
        out = []
        for path, b in zip(image_paths, boxes):
            classes = _scene_proposals(paths.index(path))[1]
            embedded.append([tuple(int(v) for v in x) for x in b])
            out.append(torch.stack([class_code[classes[tuple(int(v) for v in x)]] for x in b]))
        return out

    def fake_iter(cache_dir, image_names):
        assert list(image_names) == names
        for i in range(n):
            yield _scene_proposals(i)[0], SIZE

    monkeypatch.setattr(correspondence, "image_embeddings", fake_image_embeddings)
    monkeypatch.setattr(correspondence, "roi_embeddings", fake_roi_embeddings)
    monkeypatch.setattr(correspondence, "compute_proposals", lambda image_paths, *a, **kw: len(image_paths))
    monkeypatch.setattr(correspondence, "iter_proposals", fake_iter)
    work = tmp_path / "work"
    corr = build_correspondence(None, None, paths, names, work, cfg, device="cpu", model_id="m")
    loaded = Correspondence.load(work)
    for c in (corr, loaded):
        assert c.names == names and c.k == 2 and c.sizes.tolist() == [list(SIZE)] * n
        for i in range(n):
            rois = c.rois(i)
            assert rois.tolist() == filter_proposals(_scene_proposals(i)[0], SIZE, min_size=10, max_aspect=3.0,
                                                     iou_thr=0.5, top_n=10).tolist()
            assert len(rois) == 3  # the clutter is filtered out
            assert set(c.neighbors[i].tolist()) == {3 * (i // 3) + r for r in range(3)} - {i}
            for r in range(2):
                j = int(c.neighbors[i, r])
                q, k, s = c.pairs(i, r)
                assert len(q) == 1  # max(1, int(0.34 * 3))
                # the one pair is the object class the two images share
                assert tuple(q[0]) in _scene_proposals(i)[1] and tuple(k[0]) in _scene_proposals(j)[1]
                assert _scene_proposals(i)[1][tuple(q[0])] == 100 + i // 3
                assert _scene_proposals(j)[1][tuple(k[0])] == 100 + i // 3
                assert s[0] == pytest.approx(1.0, abs=1e-5)
    assert sorted(embedded) == sorted([tuple(b) for b in loaded.rois(i).tolist()] for i in range(n))
    assert corr.summary["num_images"] == n and corr.summary["pairs_total"] == n * 2
    assert corr.summary["proposals_raw_mean"] == 6.0 and corr.summary["proposals_kept_mean"] == 3.0


# ---------------------------------------------------------------- correspondence files
def test_correspondence_pairs_are_indexed_image_major(tmp_path):
    n, k = 4, 3
    rois = [np.array([[i, r, 5, 5] for r in range(i + 1)], np.int32) for i in range(n)]
    neighbors = np.array([[(i + 1 + r) % n for r in range(k)] for i in range(n)], np.int32)
    q, kb, s, offsets = [], [], [], [0]
    for i in range(n):
        for r in range(k):
            m = 1 + (i + 2 * r) % 3  # a different pair count per couple
            q += [[i, r, m, 0]] * m
            kb += [[int(neighbors[i, r]), r, m, 1]] * m
            s += [float(i * 10 + r)] * m
            offsets.append(offsets[-1] + m)
    corr = Correspondence(names=[f"{i}.png" for i in range(n)], neighbors=neighbors,
                          similarity=np.ones((n, k), np.float32), roi_boxes=np.concatenate(rois),
                          roi_offsets=np.concatenate([[0], np.cumsum([len(r) for r in rois])]),
                          sizes=np.array([[30, 20]] * n), pair_offsets=np.array(offsets),
                          query_box=np.array(q, np.int32), key_box=np.array(kb, np.int32),
                          score=np.array(s, np.float32), params={}, summary={})
    corr.save(tmp_path)
    loaded = Correspondence.load(tmp_path)
    for c in (corr, loaded):
        for i in range(n):
            np.testing.assert_array_equal(c.rois(i), rois[i])
            for r in range(k):
                qb, kk, ss = c.pairs(i, r)
                assert len(qb) == 1 + (i + 2 * r) % 3
                assert (qb[:, :2] == [i, r]).all() and (kk[:, 0] == neighbors[i, r]).all()
                assert (ss == i * 10 + r).all()
    from harness.core.errors import DataError

    bad = Correspondence(**{**corr.__dict__, "neighbors": np.full((n, k), n, np.int32)})
    with pytest.raises(DataError, match="range"):
        bad.validate(tmp_path)
    bad = Correspondence(**{**corr.__dict__, "roi_offsets": np.array([0, 1, 1, 3, 6])})
    with pytest.raises(DataError, match="box"):
        bad.validate(tmp_path)


def test_correspondence_defaults_are_the_published_settings():
    cfg = CorrespondenceConfig()
    assert (cfg.k, cfg.knn_resize, cfg.knn_crop) == (10, 256, 224)
    assert (cfg.min_size, cfg.max_aspect, cfg.iou_thr, cfg.top_n) == (96, 3.0, 0.5, 100)
    assert (cfg.roi_size, cfg.pair_ratio) == (224, 0.1)
    from harness_methods.orl.views import JitterConfig

    assert JitterConfig() == JitterConfig(shift=(-0.5, 0.5), scale=(0.5, 2.0), ratio=(0.5, 2.0), iou_thr=0.5)


# ---------------------------------------------------------------- embeddings
def test_resize_center_crop_keeps_the_centre_of_non_square_images():
    from harness_methods.orl.embed import resize_center_crop

    for h, w in ((40, 80), (90, 30)):
        img = torch.randint(0, 256, (3, h, w), generator=torch.Generator().manual_seed(h), dtype=torch.uint8)
        out = resize_center_crop(img, 20, 16)
        scale = 20 / min(h, w)
        nh, nw = round(h * scale), round(w * scale)
        full = F.interpolate(img[None].float(), size=(nh, nw), mode="bilinear", antialias=True,
                             align_corners=False)[0]
        top, left = (nh - 16) // 2, (nw - 16) // 2
        assert out.shape == (3, 16, 16)
        torch.testing.assert_close(out, full[:, top:top + 16, left:left + 16].clamp(0, 255))


def test_crop_boxes_reads_x_y_w_h():
    from harness_methods.orl.embed import crop_boxes

    h, w = 40, 60
    img = torch.zeros(3, h, w, dtype=torch.uint8)
    img[0] = (torch.arange(w) * 4).view(1, w).to(torch.uint8)   # x ramp
    img[1] = (torch.arange(h) * 6).view(h, 1).to(torch.uint8)   # y ramp
    boxes = np.array([[10, 5, 20, 12], [40, 30, 20, 10], [0, 0, 60, 40]])
    out = crop_boxes(img, boxes, 8)
    assert out.shape == (3, 3, 8, 8)
    for crop, (x, y, bw, bh) in zip(out, boxes):
        want = F.interpolate(img[None, :, y:y + bh, x:x + bw].float(), size=(8, 8), mode="bilinear",
                             antialias=True, align_corners=False)[0]
        torch.testing.assert_close(crop, want.clamp(0, 255))
        assert float(crop[0].mean()) == pytest.approx(4 * (x + (bw - 1) / 2), abs=1.0)
        assert float(crop[1].mean()) == pytest.approx(6 * (y + (bh - 1) / 2), abs=1.5)


def _images(folder: Path, shapes: list[tuple[int, int]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate(shapes):
        paths.append(folder / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def test_image_and_roi_embeddings_are_unit_vectors_of_the_right_network(tmp_path):
    from harness_methods.orl.embed import crop_boxes, image_embeddings, normalize, read_rgb, resize_center_crop, roi_embeddings

    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 6, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    projector = nn.Linear(6, 4)
    paths = _images(tmp_path, [(30, 50), (44, 36), (40, 40)])
    feats = image_embeddings(backbone, projector, paths, resize=24, crop=20, batch_size=2, device="cpu")
    assert feats.shape == (3, 4)
    for i, p in enumerate(paths):
        with torch.no_grad():
            z = projector(backbone(normalize(resize_center_crop(read_rgb(p), 24, 20))[None]))[0]
        torch.testing.assert_close(feats[i], z / z.norm(), atol=1e-5, rtol=1e-4)
    boxes = [np.array([[0, 0, 20, 10], [5, 5, 30, 20]]), np.array([[1, 2, 10, 30]]),
             np.array([[0, 0, 40, 40], [10, 10, 5, 5], [20, 0, 20, 40]])]
    rois = roi_embeddings(backbone, paths, boxes, size=16, images_per_batch=2, device="cpu")
    assert [tuple(r.shape) for r in rois] == [(2, 6), (1, 6), (3, 6)]
    for p, b, r in zip(paths, boxes, rois):
        with torch.no_grad():
            f = backbone(normalize(crop_boxes(read_rgb(p), b, 16)))
        torch.testing.assert_close(r, F.normalize(f, dim=1), atol=1e-5, rtol=1e-4)


def test_normalize_is_imagenet_normalisation_of_0_255_values():
    from harness_methods.orl.embed import normalize

    x = torch.tensor([0.0, 127.5, 255.0]).view(3, 1, 1).expand(3, 2, 2)
    want = (torch.tensor([0.0, 0.5, 1.0]) - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(normalize(x)[:, 0, 0], want)


def test_a_finished_stage_is_reused_only_for_the_same_images_settings_and_model(tmp_path):
    import dataclasses
    import json

    from harness_methods.orl.stages.correspondence import finished_summary, image_names

    names = image_names([tmp_path / "coco" / "a.png", tmp_path / "coco" / "b.png"], tmp_path)
    assert names == ["coco/a.png", "coco/b.png"]
    cfg = CorrespondenceConfig(k=1)
    assert finished_summary(tmp_path, names, cfg, "m") is None
    meta = {"schema": 1, "names": names, "params": {**dataclasses.asdict(cfg), "model": "m"},
            "summary": {"pairs_total": 3}}
    (tmp_path / "correspondence.json").write_text(json.dumps(meta))
    assert finished_summary(tmp_path, names, cfg, "m") == {"pairs_total": 3}
    assert finished_summary(tmp_path, names[::-1], cfg, "m") is None
    assert finished_summary(tmp_path, names, dataclasses.replace(cfg, pair_ratio=0.2), "m") is None
    assert finished_summary(tmp_path, names, cfg, "other") is None
