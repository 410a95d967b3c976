"""Contrastive CAM: score, gradient weights, resolution expansion, refinement."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from contracam_scenes import mean_iou, object_scenes, tiny_model
from harness.cam.contrastive import (ContrastiveCAM, contrastive_score, expand_resolution, gradient_cam,
                                   minmax_normalize)

torch.set_num_threads(2)


def test_contrastive_score_matches_definition():
    g = torch.Generator().manual_seed(1)
    q, k = F.normalize(torch.randn(4, 8, generator=g), dim=1), F.normalize(torch.randn(4, 8, generator=g), dim=1)
    bank = [k, F.normalize(torch.randn(4, 8, generator=g), dim=1)]
    got = contrastive_score(q, k, bank)
    for i in range(4):
        denom = sum(math.exp(0.0 if j == i else float(q[i] @ z[j])) for z in bank for j in range(4))
        assert got[i].item() == pytest.approx(float(q[i] @ k[i]) - math.log(denom), rel=1e-5)


def test_gradient_cam_uses_only_positive_channel_weights():
    feature = torch.zeros(1, 2, 4, 4)
    feature[0, 0, 0, 0] = 1.0  # channel 0 active top-left, positive gradient
    feature[0, 1, 3, 3] = 5.0  # channel 1 active bottom-right, negative gradient
    feature.requires_grad_(True)
    score = feature[:, 0].sum() - feature[:, 1].sum()
    cam = gradient_cam(feature, score, size=(4, 4))
    assert cam.shape == (1, 1, 4, 4)
    assert cam[0, 0, 0, 0] == pytest.approx(1.0)
    assert cam[0, 0, 3, 3] < 0.05  # the negatively weighted channel is ignored


def test_minmax_normalize_per_image():
    x = torch.stack([torch.full((1, 3, 3), 2.0), torch.arange(9.0).view(1, 3, 3)])
    out = minmax_normalize(x)
    assert out[0].abs().max() == 0
    assert out[1].min() == 0 and out[1].max() == pytest.approx(1.0)


@pytest.mark.parametrize("factor,side", [(1, 2), (2, 4), (4, 8)])
def test_expand_resolution(factor, side):
    net, proj = tiny_model()
    cam = ContrastiveCAM(net, proj, expand_res=factor)
    assert cam.trunk.features(torch.zeros(1, 3, 64, 64))[0].shape[-1] == side


def test_expand_resolution_rejects_other_factors():
    net, _ = tiny_model()
    with pytest.raises(ValueError):
        expand_resolution(net, 3)


def test_cam_keeps_model_in_eval_and_weights_untouched():
    net, proj = tiny_model()
    before = copy.deepcopy(net.state_dict())
    cam = ContrastiveCAM(net, proj)
    cam.train()
    images, _ = object_scenes(n=4)
    mask = cam(images, iterations=2)
    assert not cam.training and not net.training
    assert mask.shape == (4, 1, 64, 64) and mask.min() >= 0 and mask.max() <= 1
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_cam_locates_distinctive_objects_better_than_centre_box():
    images, objects = object_scenes(n=12, seed=3)
    net, proj = tiny_model(seed=0)
    cam = ContrastiveCAM(net, proj, expand_res=2)
    mask = cam(images, iterations=1)
    inside = (mask * objects).flatten(1).sum(1) / objects.flatten(1).sum(1)
    assert float(inside.mean()) > 1.3 * float(mask.mean())
    centre = torch.zeros_like(objects)
    centre[..., 22:42, 22:42] = True  # a centred box of the objects' size
    assert mean_iou(mask > 0.5, objects) > mean_iou(centre, objects)


def test_refinement_grows_object_coverage():
    images, objects = object_scenes(n=12, seed=5)
    net, proj = tiny_model(seed=0)
    cam = ContrastiveCAM(net, proj, expand_res=2)
    mask, steps = cam(images, iterations=4, return_steps=True)
    assert len(steps.cams) == 4 and len(steps.inputs) == 4
    coverages = []
    running = None
    for c in steps.cams:
        running = c if running is None else torch.maximum(running, c)
        coverages.append(float(((running > 0.5) & objects).sum() / objects.sum()))
    assert torch.equal(running, mask)
    assert all(b >= a for a, b in zip(coverages, coverages[1:]))
    assert coverages[-1] > coverages[0]
    # masked regions are filled with the batch's mean colour
    fill = images.mean(dim=(0, 2, 3), keepdim=True)
    expected = images * (1 - steps.cams[0]) + fill * steps.cams[0]
    assert torch.allclose(steps.inputs[0], expected)


def test_negatives_come_from_the_batch():
    images, _ = object_scenes(n=8, seed=7)
    net, proj = tiny_model(seed=0)
    cam = ContrastiveCAM(net, proj)
    full = cam(images, iterations=1)
    half = cam(images[:4], iterations=1)
    assert not torch.allclose(full[:4], half)
    single = cam(images[:1], iterations=2)  # own entries are zeroed, not dropped: still defined
    assert torch.isfinite(single).all()


def _official_reference(net, proj, images: torch.Tensor, iterations: int) -> torch.Tensor:
    """The official utils/gradcam.py algorithm, written out in float64 with explicit sums:
    score_i = log(sum_j exp(q_j.k_j)) - log(sum over iterations t, images j of
    exp(q_i.z_tj), own entries exp(0)); Grad-CAM of sum_i score_i on layer4."""
    def layer4(x):
        with torch.no_grad():
            x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
            return net.layer4(net.layer3(net.layer2(net.layer1(x))))

    n, size = images.shape[0], images.shape[-2:]
    fill = images.mean(dim=(0, 2, 3), keepdim=True)
    current, key, bank, mask = images, None, [], None
    for _ in range(iterations):
        feat = layer4(current).requires_grad_(True)
        q = F.normalize(proj(feat.mean(dim=(2, 3))), dim=1)
        key = q.detach() if key is None else key
        bank.append(q.detach())
        numerator = torch.log(sum(torch.exp(q[j] @ key[j]) for j in range(n)))
        score = 0.0
        for i in range(n):
            denom = sum(torch.exp(q[i] @ z[j]) if j != i else torch.ones((), dtype=q.dtype) for z in bank
                        for j in range(n))
            score = score + numerator - torch.log(denom)
        (grad,) = torch.autograd.grad(score, feat)
        w = grad.mean(dim=(2, 3), keepdim=True).clamp_min(0)
        cam = F.interpolate(F.relu((w * feat).sum(dim=1, keepdim=True)).detach(), size=size, mode="bicubic",
                            align_corners=False)
        lo = cam.amin(dim=(1, 2, 3), keepdim=True)
        cam = (cam - lo) / (cam.amax(dim=(1, 2, 3), keepdim=True) - lo + 1e-20)
        mask = cam if mask is None else torch.maximum(mask, cam)
        current = images * (1 - mask) + fill * mask
    return mask


def test_official_numerator_matches_a_float64_reference_at_ten_refinements():
    torch.manual_seed(3)
    net, proj = tiny_model()
    net, proj = net.double().eval(), proj.double().eval()
    images = torch.randn(6, 3, 64, 64, dtype=torch.float64)
    ours = ContrastiveCAM(copy.deepcopy(net), copy.deepcopy(proj), numerator="official")(images, iterations=10)
    ref = _official_reference(net, proj, images, iterations=10)
    assert (ours - ref).abs().max().item() <= 1e-9
    paper = ContrastiveCAM(copy.deepcopy(net), copy.deepcopy(proj), numerator="paper")
    assert (paper(images, iterations=1) - ContrastiveCAM(copy.deepcopy(net), copy.deepcopy(proj),
                                                         numerator="official")(images, iterations=1)).abs().max() < 1e-6
    assert (paper(images, iterations=10) - ours).abs().max() > 1e-3  # the two scores part after refinement
    with pytest.raises(ValueError, match="numerator"):
        ContrastiveCAM(net, proj, numerator="other")
