"""Stage 2 end to end on small scenes: files, resume, and same-class RoI pairs."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from harness.pretrain.data import list_scene_images
from harness.pretrain.models import build_head, build_resnet, mlp_spec
from harness_methods.orl.artifacts import Correspondence
from harness_methods.orl.boxes import iou_pairwise
from harness_methods.orl import correspondence
from harness_methods.orl.correspondence import CorrespondenceConfig, build_correspondence
from orl_scenes import make_scenes

CFG = CorrespondenceConfig(k=3, knn_resize=72, knn_crop=64, knn_batch_size=16, ss_chunk_size=8, ss_workers=1,
                           min_size=12, max_aspect=3.0, iou_thr=0.5, top_n=12, roi_size=32, roi_images_per_batch=6,
                           roi_dtype="float32", roi_chunk_size=8, pair_ratio=0.2)


def _encoder():
    torch.manual_seed(0)
    return build_resnet("resnet18"), build_head(mlp_spec([512, 128, 32]))


def _match(boxes: np.ndarray, truth) -> np.ndarray:
    """Class of the ground-truth object each box overlaps with IoU >= 0.5, else -1."""
    gt = np.array([b for b, _ in truth])
    cls = np.array([c for _, c in truth])
    iou = iou_pairwise(boxes, gt)
    best = iou.argmax(1)
    return np.where(iou.max(1) >= 0.5, cls[best], -1)


def test_correspondence_files_resume_and_same_class_pairs(tmp_path, monkeypatch):
    truth = make_scenes(tmp_path / "data", n=24, side=96)
    paths = list_scene_images(tmp_path / "data")
    names = [p.relative_to(tmp_path / "data").as_posix() for p in paths]
    backbone, projector = _encoder()
    work = tmp_path / "work"
    corr = build_correspondence(backbone, projector, paths, names, work, CFG, device="cpu")

    loaded = Correspondence.load(work)
    assert loaded.names == names and loaded.neighbors.shape == (24, 3)
    assert not (loaded.neighbors == np.arange(24)[:, None]).any()
    np.testing.assert_array_equal(loaded.query_box, corr.query_box)
    for i in range(24):
        rois = loaded.rois(i)
        assert 1 <= len(rois) <= CFG.top_n
        assert (rois[:, 2] >= CFG.min_size).all() or len(rois) == 1
        for r in range(3):
            q, k, s = loaded.pairs(i, r)
            assert len(q) >= 1 and np.all(np.diff(s) <= 1e-6)
            # every query box is one of the image's RoIs, every key box one of the neighbour's
            assert all(any((b == x).all() for x in rois) for b in q)
            nb_rois = loaded.rois(int(loaded.neighbors[i, r]))
            assert all(any((b == x).all() for x in nb_rois) for b in k)

    # same-class matching: among pairs whose two boxes both cover an object, the classes
    # agree far more often than for random box pairs of the same images
    same, total, chance_num, chance_den = 0, 0, 0.0, 0
    for i in range(24):
        for r in range(3):
            j = int(loaded.neighbors[i, r])
            q, k, _ = loaded.pairs(i, r)
            cq, ck = _match(q, truth[i]), _match(k, truth[j])
            ok = (cq >= 0) & (ck >= 0)
            same += int((cq[ok] == ck[ok]).sum())
            total += int(ok.sum())
            aq, ak = _match(loaded.rois(i), truth[i]), _match(loaded.rois(j), truth[j])
            aq, ak = aq[aq >= 0], ak[ak >= 0]
            chance_num += float((aq[:, None] == ak[None, :]).sum())
            chance_den += len(aq) * len(ak)
    assert total >= 20, f"only {total} pairs cover objects on both sides"
    rate, chance = same / total, chance_num / chance_den
    assert rate > chance + 0.2, f"same-class rate {rate:.2f} vs chance {chance:.2f}"

    # a second run reuses every cache (kNN included, even with another pair ratio) and gives the same files
    with np.load(work / "knn.npz") as knn:
        assert str(knn["cache_key"]) == correspondence.knn_cache_key(names, "", CFG)
    before = {p.name: p.stat().st_mtime_ns for p in (work / "ss").glob("chunk_*")}
    before.update({p.name: p.stat().st_mtime_ns for p in (work / "roi_emb").glob("chunk_*")})
    again = build_correspondence(backbone, projector, paths, names, work, CFG, device="cpu")
    after = {p.name: p.stat().st_mtime_ns for p in (work / "ss").glob("chunk_*")}
    after.update({p.name: p.stat().st_mtime_ns for p in (work / "roi_emb").glob("chunk_*")})
    assert before == after
    np.testing.assert_array_equal(again.key_box, corr.key_box)

    def no_embedding(*args, **kwargs):
        raise AssertionError("the kNN step ran again")

    monkeypatch.setattr(correspondence, "image_embeddings", no_embedding)
    build_correspondence(backbone, projector, paths, names, work, dataclasses.replace(CFG, pair_ratio=0.5),
                         device="cpu")


def test_roi_embedding_resumes_after_an_interruption(tmp_path, monkeypatch):
    """Interrupted while embedding RoIs (after one of three chunks, with a half-written temp
    file left behind as a kill would), the rerun embeds only the missing chunks and gives
    the uninterrupted run's pairs."""
    make_scenes(tmp_path / "data", n=24, side=96)
    paths = list_scene_images(tmp_path / "data")
    names = [p.relative_to(tmp_path / "data").as_posix() for p in paths]
    backbone, projector = _encoder()
    reference = build_correspondence(backbone, projector, paths, names, tmp_path / "ref", CFG, device="cpu")

    real, calls = correspondence.roi_embeddings, []

    class Killed(Exception):
        pass

    def embed_then_die(backbone, image_paths, *args, **kwargs):
        calls.append(len(image_paths))
        if len(calls) == 2:
            (work / "roi_emb" / ".chunk_000001.npy.999.tmp").write_bytes(b"\x93NUMPY half")
            raise Killed
        return real(backbone, image_paths, *args, **kwargs)

    work = tmp_path / "work"
    monkeypatch.setattr(correspondence, "roi_embeddings", embed_then_die)
    with pytest.raises(Killed):
        build_correspondence(backbone, projector, paths, names, work, CFG, device="cpu")
    assert sorted(p.name for p in (work / "roi_emb").glob("chunk_*.npy")) == ["chunk_000000.npy"]

    calls.clear()
    monkeypatch.setattr(correspondence, "roi_embeddings",
                        lambda backbone, image_paths, *a, **kw: calls.append(len(image_paths)) or real(
                            backbone, image_paths, *a, **kw))
    resumed = build_correspondence(backbone, projector, paths, names, work, CFG, device="cpu")
    assert calls == [CFG.roi_chunk_size] * 2  # chunks 1 and 2 only
    np.testing.assert_array_equal(resumed.query_box, reference.query_box)
    np.testing.assert_array_equal(resumed.key_box, reference.key_box)
    np.testing.assert_allclose(resumed.score, reference.score, rtol=1e-6)
