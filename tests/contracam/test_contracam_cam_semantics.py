"""Contrastive CAM, CAM-to-box extraction and the CAM stages pinned against plain references.

The CAM is recomputed with explicit loops in float64 on a micro ResNet (score sign and
normalisation, positive channel weights, refinement masks and fills, the unmasked key
and the growing negative bank); boxes are recomputed with scipy's connected components on
non-square masks (threshold relative to the peak, strict comparisons, x normalised by
the width and y by the height, margins, component cleaning before thresholding).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage
from torch import nn

from harness.cam.boxes import (boxes_from_mask, expand_box, keep_large_components, load_mask, mask_path,
                               mask_to_boxes)
from harness.cam.contrastive import (ContrastiveCAM, contrastive_score, expand_resolution, gradient_cam,
                                     minmax_normalize)

torch.set_num_threads(2)


# ---------------------------------------------------------------- a micro ResNet
class MicroResNet(nn.Module):
    """The attributes ContraCAM's trunk reads (conv1 ... layer4), with a few channels:
    24 px in, a 3 x 3 ``layer4`` map out (strided ``layer3[0]`` and ``layer4[0]``)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(2)
        self.layer1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(8, 12, 3, padding=1), nn.ReLU())
        self.layer3 = nn.Sequential(nn.Conv2d(12, 12, 3, stride=2, padding=1), nn.ReLU())
        self.layer4 = nn.Sequential(nn.Conv2d(12, 16, 3, stride=2, padding=1), nn.ReLU())
        with torch.no_grad():
            self.bn1.running_mean.uniform_(-0.2, 0.2)
            self.bn1.running_var.uniform_(0.5, 1.5)


def micro_model(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    net = MicroResNet(seed)
    proj = nn.Sequential(nn.Linear(16, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 8))
    return net.double().eval(), proj.double().eval()


def ref_layer4(net: MicroResNet, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        return net.layer4(net.layer3(net.layer2(net.layer1(x))))


def ref_cam(net: MicroResNet, proj: nn.Module, images: torch.Tensor, iterations: int
            ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """The paper's ContraCAM with refinement, term by term: score_i = q_i.k_i - log(sum over
    iterations t and images j of exp(q_i.z_tj), own entries exp(0)); k = the unmasked
    projection; Grad-CAM with clamped mean-gradient weights; ReLU, bicubic, min-max;
    mask = running max; next input blends the ORIGINAL images with their batch mean."""
    n, size = images.shape[0], images.shape[-2:]
    fill = images.mean(dim=(0, 2, 3), keepdim=True)
    current, key, bank, mask = images, None, [], None
    cams, inputs = [], []
    for _ in range(iterations):
        feat = ref_layer4(net, current).requires_grad_(True)
        z = proj(feat.mean(dim=(2, 3)))
        q = z / z.norm(dim=1, keepdim=True)
        key = q.detach() if key is None else key
        bank.append(q.detach())
        score = torch.zeros((), dtype=q.dtype)
        for i in range(n):
            denom = sum(torch.exp(q[i] @ zt[j]) if j != i else torch.ones((), dtype=q.dtype)
                        for zt in bank for j in range(n))
            score = score + q[i] @ key[i] - torch.log(denom)
        (grad,) = torch.autograd.grad(score, feat)
        weights = grad.mean(dim=(2, 3), keepdim=True).clamp_min(0)
        raw = F.relu((weights * feat).sum(dim=1, keepdim=True)).detach()
        up = F.interpolate(raw, size=size, mode="bicubic", align_corners=False)
        lo = up.amin(dim=(1, 2, 3), keepdim=True)
        cam = (up - lo) / (up.amax(dim=(1, 2, 3), keepdim=True) - lo + 1e-20)
        mask = cam if mask is None else torch.maximum(mask, cam)
        current = images * (1 - mask) + fill * mask
        cams.append(cam)
        inputs.append(current)
    return mask, cams, inputs


# ---------------------------------------------------------------- score and Grad-CAM
def test_contrastive_score_sign_and_both_numerators():
    g = torch.Generator().manual_seed(0)
    n, d = 5, 6
    q = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    k = F.normalize(q + 0.3 * torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    bank = [k, F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1), q]
    for numerator in ("paper", "official"):
        got = contrastive_score(q, k, bank, numerator)
        for i in range(n):
            terms = [0.0 if j == i else float(q[i] @ z[j]) for z in bank for j in range(n)]
            log_denom = np.log(np.sum(np.exp(terms)))
            if numerator == "paper":
                positive = float(q[i] @ k[i])
            else:
                positive = float(np.log(sum(np.exp(float(q[j] @ k[j])) for j in range(n))))
            assert float(got[i]) == pytest.approx(positive - log_denom, rel=1e-10, abs=1e-12)
    # one image: its own entries enter as exp(0), so the score is the positive term
    one = contrastive_score(q[:1], k[:1], [k[:1], q[:1]])
    assert float(one[0]) == pytest.approx(float(q[0] @ k[0]) - np.log(2.0))
    with pytest.raises(ValueError):
        contrastive_score(q, k, bank, "other")


def test_minmax_normalize_is_per_image():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 1, 4, 6, generator=g, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.1]).view(3, 1, 1, 1)
    x[2] = 3.0  # constant map
    got = minmax_normalize(x)
    for i in range(2):
        want = (x[i] - x[i].min()) / (x[i].max() - x[i].min())
        assert torch.allclose(got[i], want, atol=1e-12)
    assert torch.equal(got[2], torch.zeros_like(got[2]))


def test_gradient_cam_matches_a_plain_grad_cam():
    g = torch.Generator().manual_seed(2)
    feature = torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64)
    weights_map = torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64)
    weights_map[:, 0] = weights_map[:, 0].abs() + 0.5  # at least one positive channel per image
    feature.requires_grad_(True)
    score = (feature * weights_map).sum(dim=(1, 2, 3))  # d score / d feature = weights_map
    got = gradient_cam(feature, score, size=(9, 16))
    assert got.shape == (2, 1, 9, 16)
    f = feature.detach().numpy()
    alpha = np.maximum(weights_map.numpy().mean(axis=(2, 3)), 0.0)  # spatial mean, clamped
    raw = np.maximum(np.einsum("bc,bchw->bhw", alpha, f), 0.0)[:, None]
    up = F.interpolate(torch.from_numpy(raw), size=(9, 16), mode="bicubic", align_corners=False).numpy()
    lo, hi = up.min(axis=(1, 2, 3), keepdims=True), up.max(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(got.numpy(), (up - lo) / (hi - lo), atol=1e-10)
    # only negative weights: nothing is activated, and nothing becomes NaN
    feature2 = torch.rand(1, 3, 3, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    empty = gradient_cam(feature2, -feature2.sum(), size=(6, 6))
    assert torch.equal(empty, torch.zeros_like(empty))


def test_gradient_cam_peaks_where_the_score_gradient_points():
    feature = torch.zeros(1, 2, 4, 6, dtype=torch.float64)
    feature[0, 0, 3, 1] = 2.0   # bottom left in the rewarded channel
    feature[0, 1, 0, 5] = 9.0   # top right in the penalised channel
    feature.requires_grad_(True)
    cam = gradient_cam(feature, feature[:, 0].sum() - feature[:, 1].sum(), size=(4, 6))
    assert tuple(np.unravel_index(int(cam.argmax()), (4, 6))) == (3, 1)
    assert float(cam[0, 0, 0, 5]) < 0.05


# ---------------------------------------------------------------- refinement
def test_contrastive_cam_with_refinement_matches_the_float64_reference():
    net, proj = micro_model(0)
    g = torch.Generator().manual_seed(3)
    images = torch.randn(5, 3, 24, 24, generator=g, dtype=torch.float64)
    images[:, :, 4:12, 10:20] += 2.0 * torch.randn(5, 3, 1, 1, generator=g, dtype=torch.float64)
    cam = ContrastiveCAM(copy.deepcopy(net), copy.deepcopy(proj))
    mask, steps = cam(images, iterations=3, return_steps=True)
    want, cams, inputs = ref_cam(net, proj, images, 3)
    assert mask.shape == (5, 1, 24, 24)
    assert (mask - want).abs().max().item() <= 1e-9
    for t in range(3):
        assert (steps.cams[t] - cams[t]).abs().max().item() <= 1e-9
        assert (steps.inputs[t] - inputs[t]).abs().max().item() <= 1e-9
    # not a degenerate map: images have a peak at 1 and later iterations add to the mask
    assert int((mask.amax(dim=(1, 2, 3)) > 0.999).sum()) >= 4
    assert (steps.cams[1] - steps.cams[0]).abs().max() > 1e-3
    single = cam(images, iterations=1)
    assert (single - cams[0]).abs().max().item() <= 1e-9


def test_contrastive_cam_with_expanded_resolution_matches_the_reference():
    net, proj = micro_model(1)
    g = torch.Generator().manual_seed(4)
    images = torch.randn(4, 3, 24, 24, generator=g, dtype=torch.float64)
    cam = ContrastiveCAM(copy.deepcopy(net), copy.deepcopy(proj), expand_res=2)
    assert cam.trunk.features(images)[0].shape[-2:] == (6, 6)
    ref_net = copy.deepcopy(net)
    ref_net.layer4[0].stride = (1, 1)
    want, _, _ = ref_cam(ref_net, proj, images, 2)
    assert (cam(images, iterations=2) - want).abs().max().item() <= 1e-9
    with pytest.raises(ValueError):
        cam(images, iterations=0)


def test_contrastive_cam_of_non_square_images_matches_the_reference():
    net, proj = micro_model(2)
    images = torch.randn(3, 3, 24, 40, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    mask = ContrastiveCAM(copy.deepcopy(net), copy.deepcopy(proj))(images, iterations=2)
    want, _, _ = ref_cam(net, proj, images, 2)
    assert mask.shape == (3, 1, 24, 40)
    assert (mask - want).abs().max().item() <= 1e-9


@pytest.mark.parametrize("factor,side,changed", [(1, 3, ()), (2, 6, ("layer4",)), (4, 12, ("layer4", "layer3"))])
def test_expand_resolution_sets_stride_one_in_the_first_blocks(factor, side, changed):
    net, _ = micro_model(0)
    expand_resolution(net, factor)
    for name in ("layer3", "layer4"):
        assert getattr(net, name)[0].stride == ((1, 1) if name in changed else (2, 2))
    assert ref_layer4(net, torch.zeros(1, 3, 24, 24, dtype=torch.float64)).shape[-1] == side


# ---------------------------------------------------------------- CAM -> boxes
def ref_keep(mask: np.ndarray, min_area: float) -> np.ndarray:
    support = np.floor(np.clip(mask, 0, 1) * 255) >= 1
    labels, count = ndimage.label(support, structure=[[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    out = np.zeros_like(mask)
    for c in range(1, count + 1):
        part = labels == c
        if part.sum() > min_area * mask.size:
            out[part] = mask[part]
    return out


def ref_boxes(mask: np.ndarray, threshold: float, min_area: float, margin: float) -> list[tuple[float, ...]]:
    """Bounding boxes of the 8-connected parts of ``mask > threshold * max``, normalised
    xyxy, kept when larger than ``min_area`` of the image, grown by ``margin`` per side."""
    h, w = mask.shape
    if mask.max() <= 0:
        return []
    labels, _ = ndimage.label(mask > threshold * mask.max(), structure=np.ones((3, 3)))
    out = []
    for sl in ndimage.find_objects(labels):
        y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
        bw, bh = x1 - x0, y1 - y0
        if bw * bh > min_area * h * w:
            out.append((max(0.0, x0 - margin * bw) / w, max(0.0, y0 - margin * bh) / h,
                        min(float(w), x1 + margin * bw) / w, min(float(h), y1 + margin * bh) / h))
    return sorted(out)


def _random_blob_mask(rng: np.random.Generator, h: int = 48, w: int = 80) -> np.ndarray:
    """Blobs in a 3 x 4 grid of cells (never nested): rectangles, L shapes and bumps of
    random strength, some under the 8-bit support, some tiny."""
    mask = np.zeros((h, w), np.float32)
    ch, cw = h // 3, w // 4
    yy, xx = np.mgrid[:ch - 2, :cw - 2]
    for r in range(3):
        for c in range(4):
            kind = rng.integers(0, 5)
            cell = mask[r * ch + 1:(r + 1) * ch - 1, c * cw + 1:(c + 1) * cw - 1]
            value = float(rng.choice([0.002, rng.uniform(0.05, 1.0), rng.uniform(0.3, 1.0)]))
            y0, x0 = int(rng.integers(0, ch - 6)), int(rng.integers(0, cw - 6))
            bh, bw = int(rng.integers(1, ch - 2 - y0)), int(rng.integers(1, cw - 2 - x0))
            if kind == 0:
                cell[y0:y0 + bh, x0:x0 + bw] = value
            elif kind == 1:
                cell[y0:y0 + bh, x0:x0 + 2] = value
                cell[y0 + bh - 2:y0 + bh, x0:x0 + bw] = value
            elif kind == 2:
                cy, cx, s = rng.uniform(3, ch - 5), rng.uniform(3, cw - 5), rng.uniform(1.5, 4)
                cell[:] = value * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
            elif kind == 3:  # two squares touching at a corner only
                cell[0:3, 0:3] = value
                cell[3:6, 3:6] = value
    return mask


def test_keep_large_components_matches_a_four_connected_reference():
    rng = np.random.default_rng(0)
    for _ in range(25):
        mask = _random_blob_mask(rng)
        min_area = float(rng.choice([0.002, 0.005, 0.01]))
        np.testing.assert_array_equal(keep_large_components(mask, min_area), ref_keep(mask, min_area))


def test_keep_large_components_boundaries():
    m = np.zeros((40, 40), np.float32)   # 1 % = 16 px
    m[0:4, 0:4] = 0.9                     # exactly 1 %: dropped
    m[5:8, 5:8] = m[8:11, 8:11] = 0.7     # 9 + 9 px touching at a corner: two parts, both dropped
    m[20:23, 0:3] = 0.5                   # 9 px joined along an edge to ...
    m[20:23, 3:6] = 0.006                 # ... 9 px at 1.5/255 (in the 8-bit support): 18 px, kept
    m[30:33, 0:3] = 0.5                   # 9 px next to ...
    m[30:33, 3:6] = 0.003                 # ... 9 px at 0.77/255 (not in the support): both dropped
    m[15, 14:34] = 0.8                    # a 20 px line: kept, with its soft values
    out = keep_large_components(m, min_area=0.01)
    assert not out[0:4, 0:4].any() and not out[5:11, 5:11].any()
    assert (out[20:23, 0:3] == 0.5).all() and (out[20:23, 3:6] == np.float32(0.006)).all()
    assert not out[30:33, 0:6].any()
    assert (out[15, 14:34] == np.float32(0.8)).all()


def test_mask_to_boxes_matches_the_reference_on_non_square_masks():
    rng = np.random.default_rng(1)
    for _ in range(25):
        mask = _random_blob_mask(rng)
        threshold = float(rng.choice([0.3, 0.5, 0.7]))
        min_area, margin = float(rng.choice([0.005, 0.01])), float(rng.choice([0.0, 0.2]))
        got = mask_to_boxes(mask, threshold=threshold, min_area=min_area, margin=margin)
        want = ref_boxes(mask, threshold, min_area, margin)
        assert len(got) == len(want)
        np.testing.assert_allclose(np.array(got).reshape(-1, 4), np.array(want).reshape(-1, 4), atol=1e-9)


def test_mask_to_boxes_threshold_is_strict_and_relative_to_the_peak():
    m = np.zeros((40, 60), np.float32)
    m[2:10, 2:20] = 0.6       # the peak
    m[20:30, 5:25] = 0.3      # exactly half the peak: not above it
    m[20:30, 35:55] = 0.31    # just above
    assert mask_to_boxes(m, margin=0.0) == [(2 / 60, 2 / 40, 20 / 60, 10 / 40), (35 / 60, 20 / 40, 55 / 60, 30 / 40)]
    assert mask_to_boxes(m * 0.5, margin=0.0) == mask_to_boxes(m, margin=0.0)  # only ratios to the peak count
    assert mask_to_boxes(np.zeros((5, 7), np.float32)) == []
    # boxes of exactly min_area are dropped, one pixel more is kept (1 % of 40 x 60 = 24 px)
    m = np.zeros((40, 60), np.float32)
    m[2:6, 2:8] = 1.0      # 4 x 6 = 24 px
    m[20:25, 30:35] = 1.0  # 5 x 5 = 25 px
    assert mask_to_boxes(m, margin=0.0) == [(30 / 60, 20 / 40, 35 / 60, 25 / 40)]


def test_tree_contours_add_the_holes_external_ones_do_not():
    m = np.zeros((50, 80), np.float32)
    m[5:45, 10:70] = 1.0
    m[15:35, 25:55] = 0.0  # a hole of 15 % of the image
    assert mask_to_boxes(m, margin=0.0) == [(10 / 80, 5 / 50, 70 / 80, 45 / 50)]
    assert mask_to_boxes(m, margin=0.0, contours="external") == mask_to_boxes(m, margin=0.0)
    tree = mask_to_boxes(m, margin=0.0, contours="tree")
    assert len(tree) == 2 and (10 / 80, 5 / 50, 70 / 80, 45 / 50) in tree


def test_mask_files_round_to_the_nearest_8bit_level(tmp_path):
    from harness.cam.boxes import save_mask

    levels = np.arange(0, 250, 7, dtype=np.float64)
    mask = ((levels[None, :] + np.array([[0.2], [0.6]])) / 255).astype(np.float32)  # just above, above half
    save_mask(tmp_path / "m.png", mask)
    np.testing.assert_allclose(load_mask(tmp_path / "m.png"), np.round(mask * 255) / 255, atol=1e-7)


def test_a_cam_peaking_on_an_object_boxes_the_object():
    h, w = 60, 100
    yy, xx = np.mgrid[:h, :w]
    square = (slice(12, 28), slice(62, 78))  # the object, rows 12-27, columns 62-77
    cam = np.exp(-((yy - 19.5) ** 2 + (xx - 69.5) ** 2) / (2 * 9.0 ** 2)).astype(np.float32)
    cam[square] = 1.0
    cam += 0.05 * np.exp(-((yy - 50) ** 2 + (xx - 10) ** 2) / 20.0).astype(np.float32)  # a weak distractor
    (box,) = boxes_from_mask(cam, margin=0.0)
    x0, y0, x1, y1 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    assert x0 <= 62 and y0 <= 12 and x1 >= 78 and y1 >= 28  # contains the object
    assert (x1 - x0) * (y1 - y0) < 3 * 16 * 16  # and not much more
    (grown,) = boxes_from_mask(cam, margin=0.2)
    bw, bh = box[2] - box[0], box[3] - box[1]
    assert grown == pytest.approx((box[0] - 0.2 * bw, box[1] - 0.2 * bh, box[2] + 0.2 * bw, box[3] + 0.2 * bh))


def test_components_are_cleaned_before_thresholding():
    m = np.zeros((50, 50), np.float32)
    m[0:3, 0:3] = 1.0          # a bright speck under 1 % of the image
    m[20:40, 10:40] = 0.4      # the object: under half the speck's value
    assert boxes_from_mask(m, margin=0.0) == [(0.2, 0.4, 0.8, 0.8)]


def test_expand_box_grows_x_by_width_and_y_by_height():
    assert expand_box((10, 20, 30, 60), 100, 200, 0.25) == pytest.approx((0.05, 0.05, 0.35, 0.35))
    assert expand_box((90, 150, 100, 200), 100, 200, 0.5) == pytest.approx((0.85, 0.625, 1.0, 1.0))
    assert expand_box((0, 0, 40, 20), 100, 200, 0.5) == pytest.approx((0.0, 0.0, 0.6, 0.15))


# ---------------------------------------------------------------- inference helpers
def test_normalize_images_is_channel_first_imagenet_normalisation():
    from harness.cam.infer import normalize_images

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    got = normalize_images(images)
    assert got.shape == (2, 3, 5, 7)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    want = ((images / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)


def test_load_image_resizes_to_a_square_without_keeping_the_aspect(tmp_path):
    from harness.cam.infer import load_image

    img = np.zeros((30, 60, 3), np.uint8)
    img[:, :30] = (250, 0, 0)
    img[:, 30:] = (0, 0, 250)
    img[20:, :] = (0, 250, 0)
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(img[:, :, 1]).save(tmp_path / "grey.png")
    out = load_image(tmp_path / "a.png", 12)
    assert out.shape == (12, 12, 3) and out.dtype == np.uint8
    assert (out[1, 1] == (250, 0, 0)).all() and (out[1, 10] == (0, 0, 250)).all() and (out[10, 6] == (0, 250, 0)).all()
    assert load_image(tmp_path / "grey.png", 12).shape == (12, 12, 3)


class _StubCam:
    """A CAM model stand-in: records its calls and answers a fixed function of the input."""

    def __init__(self, masks: np.ndarray | None = None) -> None:
        self.calls: list[tuple[torch.Tensor, int]] = []
        self.masks = masks

    def __call__(self, x: torch.Tensor, iterations: int = 1) -> torch.Tensor:
        self.calls.append((x.clone(), iterations))
        if self.masks is not None:
            return torch.from_numpy(self.masks).expand(x.shape[0], 1, *self.masks.shape).clone()
        return torch.sigmoid(x[:, :1])


def _write_images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (18 + i, 26, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_cam_batches_cover_the_images_in_order_one_negative_set_per_batch(tmp_path):
    from harness.cam.infer import cam_batches, load_image, normalize_images

    paths = _write_images(tmp_path, 7)
    stub = _StubCam()
    batches = list(cam_batches(stub, paths, size=16, batch_size=3, iterations=4))
    assert [b.start for b in batches] == [0, 3, 6] and [len(b.masks) for b in batches] == [3, 3, 1]
    assert [it for _, it in stub.calls] == [4, 4, 4]
    for batch, (x, _) in zip(batches, stub.calls):
        images = np.stack([load_image(p, 16) for p in paths[batch.start:batch.start + len(batch.masks)]])
        np.testing.assert_array_equal(batch.images, images)
        assert torch.allclose(x, normalize_images(images))
        np.testing.assert_allclose(batch.masks, torch.sigmoid(x[:, 0]).numpy(), atol=1e-6)


def test_load_cam_model_uses_the_saved_projector(tmp_path):
    from harness.cam.infer import heads_file_for, load_cam_model
    from harness.core.checkpoints import save_backbone
    from harness.core.heads import save_heads
    from harness.core.errors import CheckpointError
    from harness.pretrain.models import build_head, build_resnet, mlp_spec

    torch.manual_seed(0)
    spec = mlp_spec([512, 32, 16])
    head = build_head(spec)
    path = save_backbone(build_resnet("resnet18"), tmp_path, {"arch": "resnet18", "method": "test"})
    with pytest.raises(CheckpointError, match="heads"):
        load_cam_model(path)
    save_heads(tmp_path, {"projector": head}, {"projector": spec})
    assert heads_file_for(path).parent == tmp_path
    model = load_cam_model(path, expand_res=2, numerator="official")
    assert model.numerator == "official" and not model.training
    assert model.trunk.net.layer4[0].conv1.stride == (1, 1) and model.trunk.net.layer3[0].conv1.stride == (2, 2)
    for a, b in zip(model.projector.state_dict().values(), head.state_dict().values()):
        assert torch.equal(a, b)


# ---------------------------------------------------------------- stages
def _pattern() -> np.ndarray:
    """32 x 32: a ring (with a 25 px hole), a weak 0.4 blob, a small 16 px blob, a faint 0.2 blob."""
    m = np.zeros((32, 32), np.float32)
    m[2:12, 2:12] = 1.0
    m[4:9, 4:9] = 0.0
    m[20:28, 2:10] = 0.4
    m[20:24, 20:24] = 1.0
    m[26:32, 18:30] = 0.2
    return m


@pytest.mark.parametrize("settings", [
    dict(threshold=0.3, min_area=0.02, margin=0.1, contours="tree"),
    dict(binarize="official"),
])
def test_compute_chunk_uses_the_recipe_box_settings_and_saves_masks(tmp_path, settings):
    from harness_methods.contracam.recipe import CamConfig
    from harness_methods.contracam.stages.cam import compute_chunk, image_keys

    paths = _write_images(tmp_path / "data" / "coco" / "train2017", 5)
    keys = image_keys(tmp_path / "data", paths)
    assert keys == [f"coco/train2017/{i:03d}.png" for i in range(5)]
    cam = CamConfig(image_size=32, batch_size=2, iterations=3, chunk=4, **settings)
    stub = _StubCam(_pattern())
    boxes = compute_chunk(stub, paths, keys, cam, tmp_path / "work", "cpu")
    assert [len(x) for x, _ in stub.calls] == [2, 2, 1] and {it for _, it in stub.calls} == {3}
    full = dict(threshold=0.5, min_area=0.01, margin=0.2, binarize="soft", contours="external")
    full.update(settings)
    want = boxes_from_mask(_pattern(), **full)
    assert want != boxes_from_mask(_pattern())  # the settings matter for this pattern
    assert set(boxes) == set(keys)
    for key in keys:
        assert boxes[key] == want
        np.testing.assert_allclose(load_mask(mask_path(tmp_path / "work" / "masks", key)), _pattern(), atol=0.5 / 255)


def test_image_keys_reject_images_outside_the_root(tmp_path):
    from harness.core.errors import DataError
    from harness_methods.contracam.stages.cam import image_keys

    with pytest.raises(DataError):
        image_keys(tmp_path / "data", [tmp_path / "elsewhere" / "a.png"])


def close(got: list, want: list) -> None:
    """Two lists of boxes are equal up to float rounding."""
    assert len(got) == len(want), (got, want)
    np.testing.assert_allclose(np.array(got, dtype=float).reshape(-1, 4), np.array(want).reshape(-1, 4), atol=1e-9)


def _tiny_coco(root: Path) -> None:
    (root / "coco" / "annotations").mkdir(parents=True)
    (root / "coco" / "train2017").mkdir(parents=True)
    images = [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 100},
              {"id": 2, "file_name": "b.jpg", "width": 50, "height": 80}]
    for im in images:
        Image.fromarray(np.zeros((im["height"], im["width"], 3), np.uint8)).save(root / "coco" / "train2017" /
                                                                                  im["file_name"])
    anns = [([10, 20, 50, 30], 1500.0, 1), ([100, 10, 20, 10], 200.0, 1),   # the second: exactly 1 %
            ([180, 80, 20, 20], 400.0, 1), ([60, 50, 40, 40], 150.0, 1),    # the last: small area, big box
            ([5, 10, 20, 40], 500.0, 2)]
    payload = {"images": images, "categories": [{"id": 1, "name": "thing"}],
               "annotations": [{"id": i + 1, "image_id": img, "category_id": 1, "bbox": bbox, "area": area,
                                "iscrowd": 0, "segmentation": []} for i, (bbox, area, img) in enumerate(anns)]}
    (root / "coco" / "annotations" / "instances_train2017.json").write_text(json.dumps(payload))


def test_oracle_boxes_convert_coco_xywh_to_expanded_normalised_xyxy(tmp_path):
    from harness.api import StageContext
    from harness.cam.boxes import load_boxes
    from harness_methods.contracam.stages.oracle import gt_boxes, run

    _tiny_coco(tmp_path)
    boxes = gt_boxes(tmp_path, "train", min_area=0.01, margin=0.2)
    close(boxes["coco/train2017/a.jpg"], [(0.0, 0.14, 0.35, 0.56), (0.88, 0.76, 1.0, 1.0)])
    close(boxes["coco/train2017/b.jpg"], [(0.02, 0.025, 0.58, 0.725)])
    plain = gt_boxes(tmp_path, "train", min_area=0.0, margin=0.0)
    close(plain["coco/train2017/a.jpg"], [(0.05, 0.2, 0.3, 0.5), (0.3, 0.5, 0.5, 0.9), (0.5, 0.1, 0.6, 0.2),
                                          (0.9, 0.8, 1.0, 1.0)])
    ctx = StageContext(name="gt_boxes", cfg={"oracle": {"min_area": 0.05, "margin": 0.0}}, workdir=tmp_path / "w",
                       data_root=tmp_path, seed=0, device="cpu", preset="tiny")
    run(ctx)
    saved = load_boxes(tmp_path / "w" / "boxes.json")
    close(saved["coco/train2017/a.jpg"], [(0.05, 0.2, 0.3, 0.5)])
    close(saved["coco/train2017/b.jpg"], [(0.1, 0.125, 0.5, 0.625)])


class _SquareCam:
    """A CAM stand-in that lights up the bright pixels of each image (one per image)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor, iterations: int = 1) -> torch.Tensor:
        self.calls += 1
        return (x[:, :1] > 1.0).to(x.dtype)


def test_cam_stage_boxes_each_image_around_its_own_object_and_resumes(tmp_path, monkeypatch):
    import harness.cam.infer as infer
    from harness.api import StageContext
    from harness.cam.boxes import load_boxes
    from harness_methods.contracam.stages.cam import run

    folder = tmp_path / "data" / "coco" / "train2017"
    folder.mkdir(parents=True)
    squares = {}
    for i in range(7):  # 7 images, chunks of 4: the last chunk is short
        img = np.full((32, 48, 3), 40, np.uint8)
        x0, y0 = 3 + 5 * i, 2 + 3 * i
        img[y0:y0 + 8, x0:x0 + 12] = 250
        Image.fromarray(img).save(folder / f"{i:02d}.png")
        squares[f"coco/train2017/{i:02d}.png"] = (x0 / 48, y0 / 32, (x0 + 12) / 48, (y0 + 8) / 32)
    stub = _SquareCam()
    monkeypatch.setattr(infer, "load_cam_model", lambda *a, **kw: stub)
    cfg = {"cam": {"image_size": 48, "batch_size": 2, "chunk": 4, "iterations": 2, "margin": 0.0},
           "data": {"dirs": ["coco/train2017"]}}
    ctx = StageContext(name="cam_boxes", cfg=cfg, workdir=tmp_path / "cam", data_root=tmp_path / "data", seed=0,
                       device="cpu", preset="tiny", upstream={"pretrain": tmp_path / "pretrain"})
    ctx.workdir.mkdir()
    summary = run(ctx)
    boxes = load_boxes(tmp_path / "cam" / "boxes.json")
    assert list(boxes) == sorted(squares)
    for key, square in squares.items():
        (box,) = boxes[key]
        np.testing.assert_allclose(box, square, atol=1.5 / 48)  # resized to 48 x 48: within a pixel or so
    assert summary["images"] == 7 and summary["boxes_per_image"] == 1.0 and summary["images_without_box"] == 0.0
    assert sorted(p.name for p in (tmp_path / "cam" / "chunks").iterdir()) == ["boxes-00000.json", "boxes-00001.json"]
    calls = stub.calls
    (tmp_path / "cam" / "boxes.json").unlink()
    assert run(ctx)["images"] == 7 and stub.calls == calls  # finished chunks are not recomputed
    assert load_boxes(tmp_path / "cam" / "boxes.json") == boxes


def test_dense_crf_keeps_the_foreground_label_and_feeds_the_boxes():
    from harness.cam.boxes import dense_crf

    image = np.full((40, 60, 3), 30, np.uint8)
    image[8:28, 30:54] = 220  # the object: rows 8-27, columns 30-53
    yy, xx = np.mgrid[:40, :60]
    prob = np.clip(1.1 - np.hypot((yy - 18) / 14, (xx - 42) / 16), 0.05, 0.95).astype(np.float32)
    refined = dense_crf(image, prob)
    assert refined.shape == (40, 60)
    assert (refined[10:26, 32:52] > 0.5).all() and (refined[:, :20] < 0.5).all()
    snapped = boxes_from_mask(prob, image, crf=True, margin=0.0)
    assert snapped == [(30 / 60, 8 / 40, 54 / 60, 28 / 40)]
    assert boxes_from_mask(prob, image, crf=False, margin=0.0) != snapped
