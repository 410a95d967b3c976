"""ORL stage 3 pinned: the RoI boxes a batch samples, the patches cut from the right image
at the right place, and the three BYOL branches of the loss with their EMA target.

The scenes are coded so that a patch tells where it came from: channel 0 is an x ramp,
channel 1 a y ramp (both relative to the image size) and channel 2 the image's id.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from harness.pretrain.augment import StepRNG, ViewAug
from harness.pretrain.data import SceneImages, collate
from harness_methods.orl.artifacts import Correspondence
from harness_methods.orl.boxes import iou_one_to_many
from harness_methods.orl.views import JitterConfig, ORLBatch, xywh_to_xyxy_scaled

torch.set_num_threads(2)

SHAPES = [(60, 100), (80, 56), (64, 64), (50, 120), (90, 70)]  # (h, w) of the original images
PLAIN = dict(jitter_p=0.0, gray_p=0.0, blur_p=0.0, solarize_p=0.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _colour(i: int) -> int:
    return 30 + 45 * i


def _write(root: Path) -> list[str]:
    folder = root / "coco" / "train2017"
    folder.mkdir(parents=True)
    names = []
    for i, (h, w) in enumerate(SHAPES):
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 0] = np.round(255 * (np.arange(w) + 0.5) / w)[None, :]
        img[..., 1] = np.round(255 * (np.arange(h) + 0.5) / h)[:, None]
        img[..., 2] = _colour(i)
        names.append(f"coco/train2017/{i:03d}.png")
        Image.fromarray(img).save(root / names[-1])
    return names


def _rois(i: int) -> np.ndarray:
    """Three well separated (x, y, w, h) boxes: left, middle and right of the image."""
    h, w = SHAPES[i]
    bw, bh = w // 5, h // 3
    return np.array([[2, 2, bw, bh], [w // 2 - bw // 2, h // 3, bw, bh], [w - bw - 2, h - bh - 2, bw, bh]], np.int32)


def _correspondence(names: list[str]) -> Correspondence:
    """Neighbours ``i+1`` and ``i+3``; two pairs per couple with different own/neighbour RoIs."""
    n, k = len(names), 2
    neighbors = np.array([[(i + 1) % n, (i + 3) % n] for i in range(n)], np.int32)
    q, kb, offsets = [], [], [0]
    for i in range(n):
        for r in range(k):
            j = int(neighbors[i, r])
            for a, b in (((i + r) % 3, (i + 2 * r + 1) % 3), ((i + r + 1) % 3, (i + r) % 3)):
                q.append(_rois(i)[a])
                kb.append(_rois(j)[b])
            offsets.append(offsets[-1] + 2)
    rois = [_rois(i) for i in range(n)]
    return Correspondence(names=names, neighbors=neighbors, similarity=np.ones((n, k), np.float32),
                          roi_boxes=np.concatenate(rois), roi_offsets=np.concatenate([[0], np.cumsum([3] * n)]),
                          sizes=np.array([[w, h] for h, w in SHAPES], np.int32), pair_offsets=np.array(offsets),
                          query_box=np.array(q, np.int32), key_box=np.array(kb, np.int32),
                          score=np.ones(len(q), np.float32), params={}, summary={})


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Correspondence, SceneImages]:
    root = tmp_path_factory.mktemp("orl-stage3")
    names = _write(root)
    corr = _correspondence(names)
    images = SceneImages([root / n for n in names], short_side=40, cache=True)  # decoded smaller, aspect kept
    return corr, images


def _where(patch: torch.Tensor, i: int) -> tuple[float, float]:
    """Centre ``(x, y)`` in original pixels of a [0, 1] patch from image ``i``."""
    h, w = SHAPES[i]
    return float(patch[0].mean()) * w, float(patch[1].mean()) * h


def _source(patch: torch.Tensor) -> int:
    values = [_colour(i) / 255 for i in range(len(SHAPES))]
    got = float(patch[2].mean())
    best = int(np.argmin([abs(got - v) for v in values]))
    assert abs(got - values[best]) < 0.02 and float(patch[2].std()) < 0.02, "a patch mixes images"
    return best


def _centre(box: np.ndarray) -> tuple[float, float]:
    return float(box[0] + box[2] / 2), float(box[1] + box[3] / 2)


def test_xywh_to_xyxy_scales_x_by_sx_and_y_by_sy():
    boxes = np.array([[10, 20, 30, 40], [0, 5, 1, 2]])
    got = xywh_to_xyxy_scaled(boxes, np.array([0.5, 2.0]), np.array([0.25, 3.0]))
    torch.testing.assert_close(got, torch.tensor([[5.0, 5.0, 20.0, 15.0], [0.0, 15.0, 2.0, 21.0]]))


def test_choose_samples_rois_neighbours_and_pairs_uniformly(scene):
    corr, images = scene
    aug = ViewAug(size=16, **PLAIN)
    jitter = JitterConfig(shift=(-0.2, 0.2), scale=(0.8, 1.25), ratio=(0.8, 1.25), iou_thr=0.6)
    fn = ORLBatch(corr, images, (aug, aug), (aug, aug), 12, jitter, decode_threads=1)
    raw = collate([images[i] for i in range(len(SHAPES))])
    sizes = raw.sizes.numpy().astype(np.float64)
    roi_counts = np.zeros((5, 3), int)
    rank_counts = np.zeros((5, 2), int)
    pair_counts = np.zeros((5, 2, 2), int)
    moved = 0
    for step in range(120):
        chosen = fn.choose(raw.index.numpy(), sizes, StepRNG(7, step))
        for b in range(5):
            h, w = SHAPES[b]
            sx, sy = sizes[b, 1] / w, sizes[b, 0] / h
            back = chosen["intra1"][b].numpy().astype(np.float64) / [sx, sy, sx, sy]
            box = np.array([back[0], back[1], back[2] - back[0], back[3] - back[1]]).round().astype(int)
            r = [tuple(x) for x in _rois(b).tolist()].index(tuple(box))  # one of the image's RoIs
            roi_counts[b, r] += 1
            back = chosen["intra2"][b].numpy().astype(np.float64) / [sx, sy, sx, sy]
            other = np.array([back[0], back[1], back[2] - back[0], back[3] - back[1]])
            assert back[0] >= -1e-3 and back[1] >= -1e-3 and back[2] <= w + 1e-3 and back[3] <= h + 1e-3
            if np.abs(other - box).max() > 1e-3:
                moved += 1
                assert iou_one_to_many(box, other[None])[0] > 0.6
            j = chosen["neighbor"][b]
            rank = corr.neighbors[b].tolist().index(j)
            rank_counts[b, rank] += 1
            back = chosen["query"][b].numpy().astype(np.float64) / [sx, sy, sx, sy]
            query = np.array([back[0], back[1], back[2] - back[0], back[3] - back[1]]).round().astype(int)
            q, k, _ = corr.pairs(b, rank)
            row = [t for t in range(len(q)) if (q[t] == query).all() and (k[t] == chosen["key_xywh"][b]).all()]
            assert len(row) == 1
            pair_counts[b, rank, row[0]] += 1
    assert moved > 400
    assert (roi_counts > 20).all() and (rank_counts > 40).all() and (pair_counts > 12).all(), (
        roi_counts, rank_counts, pair_counts)


def test_patches_come_from_the_right_image_at_the_right_place(scene):
    corr, images = scene
    image_augs = (ViewAug(size=24, scale=(0.5, 1.0), flip_p=0.0, **PLAIN), ViewAug(size=24, flip_p=1.0, **PLAIN))
    patch_augs = (ViewAug(size=12, flip_p=0.0, **PLAIN), ViewAug(size=12, flip_p=1.0, **PLAIN))
    fn = ORLBatch(corr, images, image_augs, patch_augs, 12, JitterConfig(), decode_threads=2)
    raw = collate([images[i] for i in range(len(SHAPES))])
    seen_ranks = set()
    shifts = []
    for step in range(6):
        out = fn(raw, StepRNG(11, step))
        assert out["intra1"].shape == (5, 3, 12, 12) and out["image1"].shape == (5, 3, 24, 24)
        for b in range(5):
            for key in ("image1", "image2", "intra1", "intra2", "inter1"):
                assert _source(out[key][b]) == b, key
            j = _source(out["inter2"][b])
            assert j in corr.neighbors[b].tolist()
            rank = corr.neighbors[b].tolist().index(j)
            seen_ranks.add(rank)
            q, k, _ = corr.pairs(b, rank)
            qx, qy = _where(out["inter1"][b], b)
            kx, ky = _where(out["inter2"][b], j)
            hits = [t for t in range(len(q))
                    if np.hypot(qx - _centre(q[t])[0], qy - _centre(q[t])[1]) < 2.5
                    and np.hypot(kx - _centre(k[t])[0], ky - _centre(k[t])[1]) < 2.5]
            assert len(hits) == 1, (b, j, (qx, qy), (kx, ky), q, k)
            ix, iy = _where(out["intra1"][b], b)
            assert min(np.hypot(ix - cx, iy - cy) for cx, cy in map(_centre, _rois(b))) < 2.5
            # the second intra patch is the jittered copy: near the first, usually not on it
            jx, jy = _where(out["intra2"][b], b)
            h, w = SHAPES[b]
            assert abs(jx - ix) < 0.5 * w / 5 + 2 and abs(jy - iy) < 0.5 * h / 3 + 2
            span = [float(out[k][b, c].amax() - out[k][b, c].amin()) for k in ("intra1", "intra2") for c in (0, 1)]
            shifts.append(max(np.hypot(jx - ix, jy - iy), abs(span[0] - span[2]) * w, abs(span[1] - span[3]) * h))
            # first views are not flipped, second views are: the x ramp runs the other way
            for key, rising in (("image1", True), ("image2", False), ("intra1", True), ("inter1", True),
                                ("intra2", False), ("inter2", False)):
                cols = out[key][b, 0].mean(0)
                assert (float(cols[-1] - cols[0]) > 0) == rising, key
    assert seen_ranks == {0, 1}
    assert np.mean(np.array(shifts) > 1.0) > 0.6


def test_patch_augmentation_uses_the_patch_settings(scene):
    corr, images = scene
    image_aug = ViewAug(size=16, **PLAIN)
    patch = dict(PLAIN, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    fn = ORLBatch(corr, images, (image_aug, image_aug), (ViewAug(size=8, **patch), ViewAug(size=8, **patch)), 8,
                  decode_threads=1)
    raw = collate([images[i] for i in range(len(SHAPES))])
    out = fn(raw, StepRNG(0, 0))
    for key in ("intra1", "intra2", "inter1", "inter2"):
        assert out[key].shape == (5, 3, 8, 8)
        for b in range(5):
            colour = float(out[key][b, 2].mean()) * 0.25 + 0.5
            assert min(abs(colour - _colour(i) / 255) for i in range(5)) < 0.02, key


# ---------------------------------------------------------------- the loss
def _tiny_orl(weights: dict[str, float] | None = None):
    from harness_methods.orl.model import ORLNet
    from harness.pretrain.models import frozen_copy

    torch.manual_seed(0)
    model = ORLNet("resnet18", proj_hidden=16, out_dim=8, pred_hidden=16, base_momentum=0.9, weights=weights)
    model.backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 512))
    model.backbone_t = frozen_copy(model.backbone)
    with torch.no_grad():
        for p in model.backbone_t.parameters():
            p.add_(0.1 * torch.randn_like(p))
        for p in model.projector_t.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def _cos_loss(p: torch.Tensor, z: torch.Tensor) -> float:
    return float((2 - 2 * (p * z).sum(1) / (p.norm(dim=1) * z.norm(dim=1))).mean())


def test_orl_loss_is_three_weighted_symmetric_byol_terms_with_their_own_predictors():
    model = _tiny_orl({"intra": 2.0, "inter": 0.5})
    g = torch.Generator().manual_seed(1)
    batch = {f"{b}{v}": torch.randn(6, 3, 4, 4, generator=g) for b in ("image", "intra", "inter") for v in (1, 2)}
    out = model(batch)
    want = {}
    with torch.no_grad():
        for branch, w in (("image", 1.0), ("intra", 2.0), ("inter", 0.5)):
            pred = model.predictors[branch]
            p1 = pred(model.projector(model.backbone(batch[f"{branch}1"])))
            p2 = pred(model.projector(model.backbone(batch[f"{branch}2"])))
            t1 = model.projector_t(model.backbone_t(batch[f"{branch}1"]))
            t2 = model.projector_t(model.backbone_t(batch[f"{branch}2"]))
            want[branch] = w * (_cos_loss(p1, t2) + _cos_loss(p2, t1))
            assert float(out[f"loss_{branch}"]) == pytest.approx(want[branch], rel=1e-5)
    assert float(out["loss"]) == pytest.approx(sum(want.values()), rel=1e-5)
    assert len({round(v, 4) for v in want.values()}) == 3
    out["loss"].backward()
    assert all(p.grad is None for p in model.backbone_t.parameters())
    assert all(p.grad is None for p in model.projector_t.parameters())
    assert all(model.predictors[b][0].weight.grad is not None for b in ("image", "intra", "inter"))
    assert model.backbone[1].weight.grad is not None


def test_orl_target_follows_the_online_network_on_a_cosine_momentum():
    model = _tiny_orl()
    online = [p.detach().clone() for p in list(model.backbone.parameters()) + list(model.projector.parameters())]
    target = [p.detach().clone() for p in list(model.backbone_t.parameters()) + list(model.projector_t.parameters())]
    m = model.after_step(3, 10)
    assert m == pytest.approx(1 - (1 - 0.9) * (math.cos(math.pi * 4 / 10) + 1) / 2)
    now_online = list(model.backbone.parameters()) + list(model.projector.parameters())
    now_target = list(model.backbone_t.parameters()) + list(model.projector_t.parameters())
    for o, t, o_now, t_now in zip(online, target, now_online, now_target):
        assert torch.equal(o_now, o)
        torch.testing.assert_close(t_now, m * t + (1 - m) * o)
    assert model.after_step(9, 10) == pytest.approx(1.0)
    assert set(model.export_heads()) == {"projector", "predictor_image", "predictor_intra", "predictor_inter"}


def test_stage_settings_reach_the_model_and_the_patches():
    from harness.core.errors import ConfigError
    from harness_methods.orl.recipe import stage_recipe
    from harness_methods.orl.stages.orl import build_model, jitter_cfg, patch_augs

    a, b = patch_augs({"blur_p": 0.3, "view1": {"flip_p": 0.0}, "view2": {"solarize_p": 0.2}}, 24)
    assert (a.size, b.size, a.blur_p, b.blur_p, a.flip_p, b.flip_p, a.solarize_p, b.solarize_p) == (
        24, 24, 0.3, 0.3, 0.0, 0.5, 0.0, 0.2)
    jit = jitter_cfg({"shift": [-0.1, 0.2], "iou_thr": 0.3})
    assert jit == JitterConfig(shift=(-0.1, 0.2), iou_thr=0.3)
    cfg = {"pretrain_data": "x", "epochs": 3, "batch_size": 4, "arch": "resnet18", "momentum": {"base": 0.95},
           "heads": {"proj_hidden": 16, "out_dim": 8, "pred_hidden": 12},
           "orl": {"epochs": 7, "loss_weights": {"inter": 0.25}}}
    recipe = stage_recipe(cfg, "orl", ("loss_weights",))
    assert recipe["epochs"] == 7 and stage_recipe(cfg, "byol")["epochs"] == 3
    model = build_model(recipe)
    assert model.weights == {"image": 1.0, "intra": 1.0, "inter": 0.25} and model.base_momentum == 0.95
    assert model.projector_spec["dims"] == [512, 16, 8] and model.predictor_spec["dims"] == [8, 12, 8]
    with pytest.raises(ConfigError):
        build_model({**recipe, "loss_weights": {"roi": 1.0}})


def test_stage1_byol_follows_the_orl_recipe():
    from harness_methods.orl.recipe import stage_recipe
    from harness_methods.orl.stages.byol import build_model as byol_model

    cfg = {"pretrain_data": "x", "epochs": 3, "batch_size": 4, "arch": "resnet18", "momentum": {"base": 0.97},
           "heads": {"proj_hidden": 16, "out_dim": 8, "pred_hidden": 12}, "byol": {"epochs": 5}}
    recipe = stage_recipe(cfg, "byol")
    assert recipe["epochs"] == 5
    model = byol_model(recipe)
    assert (model.momentum, model.momentum_schedule) == (0.97, "cosine")
    assert model.projector_spec["dims"] == [512, 16, 8] and model.predictor_spec["dims"] == [8, 12, 8]


def test_each_orl_stage_reads_its_part_of_the_recipe():
    from harness_methods.orl import ORL
    from harness_methods.orl.recipe import SHARED_KEYS

    stages = ORL().stages({})
    assert [s.name for s in stages] == ["byol", "correspondence", "orl"]
    assert set(stages[0].reads) == set(SHARED_KEYS) | {"byol"}
    assert set(stages[1].reads) == {"data", "correspondence"}
    assert set(stages[2].reads) == set(SHARED_KEYS) | {"orl"} and stages[2].exports_backbone


def test_orl_recipe_defaults_are_the_published_heads_and_momentum():
    from harness_methods.orl.recipe import base_momentum, heads_cfg

    assert heads_cfg({}) == {"proj_hidden": 4096, "out_dim": 256, "pred_hidden": 4096}
    assert heads_cfg({"heads": {"out_dim": 128}})["out_dim"] == 128
    assert base_momentum({}) == 0.99 and base_momentum({"momentum": {"base": 0.9}}) == 0.9
