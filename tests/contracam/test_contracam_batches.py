"""Batch functions: object regions, masks following view 1's crop and flip, mixing."""
from __future__ import annotations

import torch

from harness.pretrain.augment import StepRNG, TwoViewBatch, ViewAug
from harness.pretrain.data import RawBatch
from harness_methods.contracam.augment import BackgroundMixup
from harness_methods.contracam.batches import ObjectAwareBatch, object_regions, view_masks

PLAIN = dict(size=16, jitter_p=0.0, gray_p=0.0, blur_p=0.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _raw(n: int = 4, side: int = 24) -> RawBatch:
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(n, side, side, generator=g) * 255).to(torch.uint8)
    images = masks[:, None].expand(n, 3, side, side).contiguous()  # every channel = the mask
    boxes = [[(0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)], [], [(0.25, 0.25, 0.75, 0.75)], []]
    meta = [{"mask": masks[i], "boxes": boxes[i % 4]} for i in range(n)]
    return RawBatch(images, torch.tensor([[side, side]] * n), torch.arange(n), meta)


def test_object_regions_pick_one_of_the_boxes():
    raw = _raw()
    seen = set()
    for step in range(20):
        reg = object_regions(raw, StepRNG(0, step))
        assert torch.isnan(reg[1]).all() and torch.isnan(reg[3]).all()
        assert tuple(reg[2].tolist()) == (0.25, 0.25, 0.75, 0.75)
        seen.add(tuple(reg[0].tolist()))
    assert seen == {(0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)}


def test_crops_stay_inside_the_chosen_box():
    raw = _raw()
    views = TwoViewBatch([ViewAug(**PLAIN), ViewAug(**PLAIN)], regions=object_regions)
    out = views(raw, StepRNG(0, 3))
    for i in (2,):
        for key in ("box1", "box2"):
            x0, y0, x1, y1 = out[key][i].tolist()
            assert x0 >= 0.25 - 1e-5 and y0 >= 0.25 - 1e-5 and x1 <= 0.75 + 1e-5 and y1 <= 0.75 + 1e-5


def test_view_masks_follow_the_crop_and_flip_of_view1():
    raw = _raw()
    views = TwoViewBatch([ViewAug(**PLAIN, flip_p=0.5), ViewAug(**PLAIN)])
    flips = set()
    for step in range(6):
        out = views(raw, StepRNG(1, step))
        masks = view_masks(raw, out["box1"], out["flip1"], 16, torch.device("cpu"))
        assert masks.shape == (4, 1, 16, 16)
        assert torch.allclose(masks[:, 0], out["view1"][:, 0], atol=1e-5)
        flips.update(out["flip1"].tolist())
    assert flips == {True, False}


def test_object_aware_batch_applies_bgmix_to_view1_only():
    raw = _raw()
    for m in raw.meta:  # one object in the middle of each image
        m["mask"].zero_()[8:16, 8:16] = 255
    plain = TwoViewBatch([ViewAug(**PLAIN), ViewAug(**PLAIN)])
    fn = ObjectAwareBatch(plain, BackgroundMixup(cam_thres=0.5, aug_prob=1.0))
    ref = plain(raw, StepRNG(0, 0))
    out = fn(raw, StepRNG(0, 0))
    assert torch.equal(out["view2"], ref["view2"])
    assert out["bgmix_applied"].shape == (4,)
    assert out["bgmix_applied"].any() and not torch.equal(out["view1"], ref["view1"])


def test_object_aware_batch_mixup_passes_partner_and_weight():
    raw = _raw()
    fn = ObjectAwareBatch(TwoViewBatch([ViewAug(**PLAIN), ViewAug(**PLAIN)]), mix="cutmix")
    out = fn(raw, StepRNG(0, 0))
    assert out["mix_partner"].shape == (4,) and out["mix_lam"].shape == (4,)
