"""Stage-3 batch construction: chosen boxes, scaling to the decoded image, patch shapes."""
from __future__ import annotations

import numpy as np
import torch

from harness.pretrain.augment import StepRNG, ViewAug
from harness.pretrain.data import SceneImages, collate
from harness_methods.orl.boxes import iou_one_to_many
from harness_methods.orl.views import JitterConfig, ORLBatch
from orl_scenes import hand_correspondence, make_scenes


def test_orl_batch_boxes_and_shapes(tmp_path):
    n, side = 6, 96
    truth = make_scenes(tmp_path, n=n, side=side)
    corr = hand_correspondence(truth, n, side)
    images = SceneImages([tmp_path / name for name in corr.names], short_side=48, cache=True)
    aug = ViewAug(size=32, blur_kernel=5)
    patch = ViewAug(size=16, blur_kernel=3)
    fn = ORLBatch(corr, images, (aug, aug), (patch, patch), 16, JitterConfig(), decode_threads=2)
    raw = collate([images[i] for i in range(n)])
    rng = StepRNG(seed=0, step=3)
    chosen = fn.choose(raw.index.numpy(), raw.sizes.numpy().astype(np.float64), StepRNG(seed=0, step=3))
    scale = side / 48  # decoded images are half size: boxes come back scaled by 1/2
    for b in range(n):
        x0, y0, x1, y1 = (chosen["intra1"][b].numpy() * scale).round().astype(int)
        box = np.array([x0, y0, x1 - x0, y1 - y0])
        assert any((box == r).all() for r in corr.rois(b))
        x0, y0, x1, y1 = chosen["intra2"][b].numpy() * scale
        moved = np.array([x0, y0, x1 - x0, y1 - y0])
        assert (moved == box).all() or iou_one_to_many(box, moved[None])[0] > 0.5
        assert chosen["neighbor"][b] in corr.neighbors[b].tolist()
        rank = corr.neighbors[b].tolist().index(chosen["neighbor"][b])
        q, k, _ = corr.pairs(b, rank)
        x0, y0, x1, y1 = (chosen["query"][b].numpy() * scale).round().astype(int)
        row = np.nonzero((q == np.array([x0, y0, x1 - x0, y1 - y0])).all(1))[0]
        assert len(row) and any((k[r] == chosen["key_xywh"][b]).all() for r in row)
    out = fn(raw, rng)
    for key in ("image1", "image2"):
        assert out[key].shape == (n, 3, 32, 32)
    for key in ("intra1", "intra2", "inter1", "inter2"):
        assert out[key].shape == (n, 3, 16, 16) and torch.isfinite(out[key]).all()
    again = fn(raw, StepRNG(seed=0, step=3))
    assert all(torch.equal(out[k], again[k]) for k in ("image1", "intra2", "inter2"))  # a function of (seed, step)
