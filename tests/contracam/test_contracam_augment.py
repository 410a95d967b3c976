"""Object-aware crop choice, background mixup, Mixup and CutMix."""
from __future__ import annotations

import torch

from harness_methods.contracam.augment import BackgroundMixup, background_image, cutmix, mask_rectangle, mixup


def test_mask_rectangle():
    hard = torch.zeros(10, 12, dtype=torch.bool)
    assert mask_rectangle(hard) is None
    hard[2:5, 3:9] = True
    assert mask_rectangle(hard) == (2, 4, 3, 8)


def test_background_image_tiles_the_largest_strip():
    img = torch.zeros(1, 10, 10)
    img[0] = torch.arange(10.0).view(10, 1)  # row index as value
    bg = background_image(img, (6, 9, 0, 9))  # object fills the bottom 4 rows: top strip (6 rows) is largest
    assert torch.equal(bg[0, :6], img[0, :6])
    assert torch.equal(bg[0, 6:, 0], torch.tensor([0.0, 1.0, 2.0, 3.0]))  # rows 6..9 tile rows 0..5
    assert background_image(img, (0, 9, 0, 9)) is None
    left = torch.arange(10.0).view(1, 1, 10).expand(1, 10, 10).clone()
    bg = background_image(left, (0, 9, 7, 9))  # object on the right 3 columns: the left strip is tiled
    assert torch.equal(bg[0, 0, 7:], torch.tensor([0.0, 1.0, 2.0]))


def _scene(b: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(b, 3, 32, 32, generator=g)
    masks = torch.zeros(b, 1, 32, 32)
    masks[:, :, 8:20, 10:22] = 1.0  # hard object in the middle, strips left all round
    return images, masks


def test_background_mixup_keeps_foreground_and_replaces_background():
    images, masks = _scene()
    bgmix = BackgroundMixup(cam_thres=0.2, aug_prob=1.0, generator=torch.Generator().manual_seed(1))
    mixed, applied = bgmix(images, masks)
    assert applied.all()
    fg = masks[:, 0] > 0
    assert torch.equal(mixed.permute(1, 0, 2, 3)[:, fg], images.permute(1, 0, 2, 3)[:, fg])
    changed = (mixed != images).any(dim=1)[~fg]
    assert changed.float().mean() > 0.8  # background pixels come from another image's background
    assert len(bgmix.queue) == len(images)


def test_background_mixup_soft_mask_blend():
    images, masks = _scene(4)
    masks *= 0.5
    masks[:, :, 8:20, 10:22] = 0.5
    torch.manual_seed(0)
    bgmix = BackgroundMixup(aug_prob=1.0, generator=torch.Generator().manual_seed(2))
    mixed, applied = bgmix(images, masks)
    inside = mixed[:, :, 10, 15]
    assert not torch.allclose(inside, images[:, :, 10, 15])  # half image, half background


def test_background_mixup_skips_whole_image_masks_and_respects_probability():
    images, masks = _scene()
    full = torch.ones_like(masks)
    mixed, applied = BackgroundMixup(aug_prob=1.0)(images, full)
    assert not applied.any() and torch.equal(mixed, images)
    mixed, applied = BackgroundMixup(aug_prob=0.0)(images, masks)
    assert not applied.any() and torch.equal(mixed, images)
    g = torch.Generator().manual_seed(3)
    bgmix = BackgroundMixup(aug_prob=0.4, generator=g)
    rate = torch.stack([bgmix(images, masks)[1] for _ in range(40)]).float().mean()
    assert 0.25 < rate < 0.5  # the partner may have no background (queue used after the first batch)


def test_background_mixup_uses_the_queue_when_the_partner_has_no_background():
    images, masks = _scene(2)
    masks[1] = 1.0  # image 1 has no background
    bgmix = BackgroundMixup(aug_prob=1.0, queue_size=3, generator=torch.Generator().manual_seed(0))
    for _ in range(5):
        mixed, applied = bgmix(images, masks)
        assert not applied[1]
    assert len(bgmix.queue) == 3  # FIFO bounded
    assert applied[0]


def test_background_mixup_is_deterministic_given_a_generator():
    images, masks = _scene()
    a = BackgroundMixup(generator=torch.Generator().manual_seed(9))(images, masks)[0]
    b = BackgroundMixup(generator=torch.Generator().manual_seed(9))(images, masks)[0]
    assert torch.equal(a, b)


def test_mixup_shapes_and_labels():
    x = torch.rand(6, 3, 8, 8)
    out = mixup(x, alpha=1.0, generator=torch.Generator().manual_seed(0))
    assert out.images.shape == x.shape and out.partner.shape == (6,) and out.lam.shape == (6,)
    assert sorted(out.partner.tolist()) == list(range(6))
    assert ((out.lam >= 0.5) & (out.lam <= 1)).all()
    lam = out.lam.view(-1, 1, 1, 1)
    assert torch.allclose(out.images, lam * x + (1 - lam) * x[out.partner])


def test_cutmix_shapes_and_labels():
    x = torch.rand(6, 3, 16, 16)
    out = cutmix(x, alpha=1.0, generator=torch.Generator().manual_seed(4))
    assert out.images.shape == x.shape and out.lam.shape == (6,)
    assert torch.all(out.lam == out.lam[0]) and 0.0 <= float(out.lam[0]) <= 1.0
    from_partner = (out.images == x[out.partner]).all(dim=1) & (out.images != x).any(dim=1)
    pasted = from_partner.flatten(1).float().mean(1)
    moved = out.partner != torch.arange(6)
    assert torch.allclose(pasted[moved], 1 - out.lam[moved], atol=1e-6)
