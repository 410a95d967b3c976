"""Batched two-view augmentation on tensors, on whatever device the batch is on.

One view = RandomResizedCrop (rendered with ``roi_align``, which averages several samples
per output pixel when shrinking) -> ColorJitter (per-image random order, probability
``jitter_p``) -> grayscale -> Gaussian blur -> solarize -> horizontal flip -> normalise,
the order of the MoCo v2 / BYOL torchvision pipelines. Every random number is drawn on
the CPU from a :class:`StepRNG`, in a fixed layout that does not depend on the
probabilities, so a view is a pure function of ``(seed, step, global sample position)``:
the same on CPU and GPU, and the same under DDP as in one process.

Crop geometry is returned (``box``: normalised ``x0, y0, x1, y1`` in the source image,
``flip``: bool) for methods that map regions between views. An optional per-image crop
*region* (normalised box) restricts the crop to that region, with scale relative to the
region's area, exactly as if the region had been cropped out first (object-aware crop).
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from harness.data.images import IMAGENET_MEAN, IMAGENET_STD
from harness.core.errors import ConfigError
from harness.core.config_section import checked_section, field_names
from harness.pretrain.data import RawBatch, hash_seed

_CROP_TRIES = 10


class StepRNG:
    """The random source of one optimisation step.

    Seeded from ``(seed, step)`` so it needs no checkpointing. Per-sample draws are made
    for the whole global batch (``n * world_size`` rows) and this rank's rows returned,
    so every rank sees exactly what a single process would.
    """

    def __init__(self, seed: int, step: int, rank: int = 0, world_size: int = 1) -> None:
        self.seed, self.step, self.rank, self.world_size = int(seed), int(step), int(rank), int(world_size)
        self.generator = torch.Generator().manual_seed(hash_seed(seed, step, 0xA06))

    def rand(self, n: int, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) of shape ``(n, *shape)`` for this rank's ``n`` samples (CPU)."""
        full = torch.rand((n * self.world_size, *shape), generator=self.generator)
        return full[self.rank * n:(self.rank + 1) * n]

    def uniform(self, n: int, low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * self.rand(n, *shape)


@dataclass(frozen=True)
class ViewAug:
    """Parameters of one view's augmentation (recipe section ``augment.view1`` / ``view2``).

    ``blur_sigma`` is in output pixels, ``blur_kernel`` the (odd) kernel size in output
    pixels (MoCo v2 at 224 px: 23). ``jitter`` = (brightness, contrast, saturation, hue).
    """

    size: int = 224
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 23
    solarize_p: float = 0.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @classmethod
    def from_cfg(cls, d: dict[str, Any] | None, **defaults: Any) -> "ViewAug":
        """Build from a recipe dict; ``defaults`` fill keys the dict does not set."""
        d = checked_section({**defaults, **(d or {})}, field_names(cls), "augmentation")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        aug = cls(**d)
        if aug.blur_kernel % 2 != 1:
            raise ConfigError(f"augment blur_kernel must be odd, got {aug.blur_kernel}")
        return aug


# ---------------------------------------------------------------- crop geometry
def sample_crop_boxes(sizes: torch.Tensor, aug: ViewAug, rng: StepRNG,
                      regions: torch.Tensor | None = None) -> torch.Tensor:
    """RandomResizedCrop boxes in pixels ``(N, 4)`` = ``x0, y0, x1, y1`` (float, CPU).

    ``sizes``: ``(N, 2)`` image ``(h, w)``. ``regions``: optional normalised ``(N, 4)``
    boxes; rows with NaN mean "whole image". Ten tries per image as torchvision, then a
    centre crop with the aspect ratio clamped into ``aug.ratio``.
    """
    sizes = sizes.detach().cpu().to(torch.float64)
    n = sizes.shape[0]
    h_img, w_img = sizes[:, 0], sizes[:, 1]
    u_area = rng.rand(n, _CROP_TRIES).double()
    u_ratio = rng.rand(n, _CROP_TRIES).double()
    u_pos = rng.rand(n, 2).double()
    rx0, ry0, rw, rh = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64), w_img, h_img
    if regions is not None:
        reg = regions.detach().cpu().to(torch.float64)
        valid = ~torch.isnan(reg).any(dim=1)
        x0 = (reg[:, 0].clamp(0, 1) * w_img).where(valid, rx0)
        y0 = (reg[:, 1].clamp(0, 1) * h_img).where(valid, ry0)
        x1 = (reg[:, 2].clamp(0, 1) * w_img).where(valid, w_img)
        y1 = (reg[:, 3].clamp(0, 1) * h_img).where(valid, h_img)
        ok = (x1 - x0 >= 1) & (y1 - y0 >= 1)  # degenerate regions fall back to the whole image
        rx0, ry0 = x0.where(ok, rx0), y0.where(ok, ry0)
        rw, rh = (x1 - x0).where(ok, w_img), (y1 - y0).where(ok, h_img)
    area = (rw * rh)[:, None] * (aug.scale[0] + (aug.scale[1] - aug.scale[0]) * u_area)
    log_r = math.log(aug.ratio[0]) + (math.log(aug.ratio[1]) - math.log(aug.ratio[0])) * u_ratio
    r = torch.exp(log_r)
    cw, ch = torch.sqrt(area * r), torch.sqrt(area / r)
    fits = (cw <= rw[:, None]) & (ch <= rh[:, None]) & (cw >= 1) & (ch >= 1)
    first = fits.to(torch.int8).argmax(dim=1, keepdim=True)
    any_fit = fits.any(dim=1)
    w = cw.gather(1, first)[:, 0]
    h = ch.gather(1, first)[:, 0]
    in_ratio = rw / rh
    fw = torch.where(in_ratio < aug.ratio[0], rw, torch.where(in_ratio > aug.ratio[1], rh * aug.ratio[1], rw))
    fh = torch.where(in_ratio < aug.ratio[0], rw / aug.ratio[0], torch.where(in_ratio > aug.ratio[1], rh, rh))
    w, h = w.where(any_fit, fw), h.where(any_fit, fh)
    x0 = rx0 + torch.where(any_fit, u_pos[:, 0] * (rw - w), (rw - w) / 2)
    y0 = ry0 + torch.where(any_fit, u_pos[:, 1] * (rh - h), (rh - h) / 2)
    return torch.stack([x0, y0, x0 + w, y0 + h], dim=1).float()


def render_crops(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crop-and-resize ``boxes`` (pixels, ``(N, 4)``) of a padded batch to ``size``x``size``.

    ``images`` uint8 or float ``(N, 3, H, W)``; returns float in [0, 1] on the images' device.
    """
    from torchvision.ops import roi_align

    x = images.float() if images.dtype == torch.uint8 else images
    idx = torch.arange(len(boxes), dtype=torch.float32)[:, None]
    rois = torch.cat([idx, boxes.float()], dim=1).to(x.device)
    out = roi_align(x, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    return out.div_(255.0) if images.dtype == torch.uint8 else out


# ---------------------------------------------------------------- colour operations
def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _blend(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    f = f.view(-1, 1, 1, 1)
    return (f * a + (1 - f) * b).clamp_(0, 1)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB in [0, 1] -> HSV with hue in [0, 1)."""
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    delta = maxc - minc
    s = delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    d = torch.where(delta > 0, delta, torch.ones_like(delta))
    h = torch.where(maxc == r, g - b, torch.where(maxc == g, 2.0 * d + b - r, 4.0 * d + r - g)) / d
    h = torch.where(delta > 0, h, torch.zeros_like(h))
    return torch.stack([torch.remainder(h / 6.0, 1.0), s, maxc], 1)


_HSV_OFFSETS = (5.0, 3.0, 1.0)  # R, G, B


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`: channel ``c = v - v s clamp(min(k, 4 - k), 0, 1)`` with
    ``k = (n_c + 6 h) mod 6``, ``n = 5, 3, 1`` (the sector formula in closed form)."""
    h, s, v = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    offsets = torch.tensor(_HSV_OFFSETS, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = torch.remainder(offsets + 6.0 * h, 6.0)
    return v - v * s * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)


def _adjust(x: torch.Tensor, op: int, f: torch.Tensor) -> torch.Tensor:
    if op == 0:  # brightness
        return _blend(x, torch.zeros_like(x), f)
    if op == 1:  # contrast
        return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), f)
    if op == 2:  # saturation
        return _blend(x, _gray(x), f)
    hsv = rgb_to_hsv(x)
    hsv[:, 0] = torch.remainder(hsv[:, 0] + f.view(-1, 1, 1), 1.0)
    return hsv_to_rgb(hsv)


def _apply_to(x: torch.Tensor, sel: torch.Tensor, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``x[sel] = fn(x[sel], rows)`` in place for a CPU bool mask ``sel``."""
    rows = sel.nonzero()[:, 0]
    if rows.numel():
        dev_rows = rows.to(x.device)
        x.index_copy_(0, dev_rows, fn(x.index_select(0, dev_rows), rows))


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Separable Gaussian blur with a per-image ``sigma`` (CPU ``(N,)``), reflect padding."""
    n, c, hh, ww = x.shape
    k = min(kernel, 2 * min(hh, ww) - 1)
    k -= 1 - k % 2
    half = k // 2
    t = torch.arange(-half, half + 1, dtype=torch.float32)
    w = torch.exp(-(t[None] ** 2) / (2 * sigma.float()[:, None] ** 2))
    w = (w / w.sum(1, keepdim=True)).to(x.device, x.dtype).repeat_interleave(c, 0)  # (n*c, k)
    y = F.pad(x.reshape(1, n * c, hh, ww), (half, half, half, half), mode="reflect")
    y = F.conv2d(y, w.view(n * c, 1, 1, k), groups=n * c)
    y = F.conv2d(y, w.view(n * c, 1, k, 1), groups=n * c)
    return y.view(n, c, hh, ww)


@dataclass
class ColorParams:
    """Per-image colour parameters of one view (CPU): which images are jittered, the four
    jitter factors (brightness, contrast, saturation, hue) and their order, grayscale,
    blur (with ``sigma``) and solarize flags."""

    jitter: torch.Tensor
    factors: torch.Tensor
    order: torch.Tensor
    gray: torch.Tensor
    blur: torch.Tensor
    sigma: torch.Tensor
    solarize: torch.Tensor

    def rows(self, rows: slice) -> "ColorParams":
        return ColorParams(*(getattr(self, f.name)[rows] for f in fields(self)))


def sample_color_params(n: int, aug: ViewAug, rng: StepRNG) -> ColorParams:
    """Draw the colour parameters of ``n`` images (fixed draw layout, see module docstring)."""
    u_jit, u_fac, u_perm = rng.rand(n), rng.rand(n, 4), rng.rand(n, 4)
    u_gray, u_blur, u_sigma, u_sol = rng.rand(n), rng.rand(n), rng.rand(n), rng.rand(n)
    b, c, s, hue = aug.jitter
    lo = torch.tensor([max(0.0, 1 - b), max(0.0, 1 - c), max(0.0, 1 - s), -hue])
    hi = torch.tensor([1 + b, 1 + c, 1 + s, hue])
    return ColorParams(jitter=u_jit < aug.jitter_p, factors=lo + (hi - lo) * u_fac, order=u_perm.argsort(dim=1),
                       gray=u_gray < aug.gray_p, blur=u_blur < aug.blur_p,
                       sigma=aug.blur_sigma[0] + (aug.blur_sigma[1] - aug.blur_sigma[0]) * u_sigma,
                       solarize=u_sol < aug.solarize_p)


def apply_color(x: torch.Tensor, p: ColorParams, aug: ViewAug) -> torch.Tensor:
    """Jitter (in each image's order), grayscale, blur and solarize a float [0, 1] batch in place."""
    strength = [v > 0 for v in aug.jitter]
    for slot in range(4):
        for op in range(4):
            if strength[op]:
                _apply_to(x, p.jitter & (p.order[:, slot] == op),
                          lambda xs, rows, op=op: _adjust(xs, op, p.factors[rows, op].to(xs.device, xs.dtype)))
    _apply_to(x, p.gray, lambda xs, rows: _gray(xs).expand(-1, 3, -1, -1).contiguous())
    _apply_to(x, p.blur, lambda xs, rows: gaussian_blur(xs, p.sigma[rows], aug.blur_kernel))
    _apply_to(x, p.solarize, lambda xs, rows: torch.where(xs >= 0.5, 1.0 - xs, xs))
    return x


def color_augment(x: torch.Tensor, aug: ViewAug, rng: StepRNG) -> torch.Tensor:
    """Draw colour parameters for ``x`` and apply them (in place)."""
    return apply_color(x, sample_color_params(x.shape[0], aug, rng), aug)


def normalize(x: torch.Tensor, aug: ViewAug) -> torch.Tensor:
    mean = torch.tensor(aug.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(aug.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


_POOL: ThreadPoolExecutor | None = None


def _map_row_chunks(n: int, device: torch.device, fn: Callable[[slice], torch.Tensor]) -> torch.Tensor:
    """``fn`` over row chunks, concatenated. On CPU the chunks run on parallel threads (the
    per-image operations are small and mostly single-threaded inside torch); every image
    is processed independently, so the result does not depend on the chunking."""
    global _POOL
    k = 1 if device.type != "cpu" else max(1, min(torch.get_num_threads(), n // 8))
    if k == 1:
        return fn(slice(0, n))
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(2, torch.get_num_threads()), thread_name_prefix="augment")
    grad = torch.is_grad_enabled()  # grad mode is per thread: carry the caller's into the workers

    def run(rows: slice) -> torch.Tensor:
        with torch.set_grad_enabled(grad):
            return fn(rows)

    bounds = [round(i * n / k) for i in range(k + 1)]
    return torch.cat(list(_POOL.map(run, [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])])))


@dataclass
class View:
    """One augmented view: normalised ``image`` ``(N, 3, S, S)``; ``box`` normalised crop
    box ``(N, 4)`` in source-image coordinates (CPU); ``flip`` ``(N,)`` bool (CPU)."""

    image: torch.Tensor
    box: torch.Tensor
    flip: torch.Tensor


def make_view(raw: RawBatch, aug: ViewAug, rng: StepRNG, regions: torch.Tensor | None = None,
              source: torch.Tensor | None = None) -> View:
    """Augment every image of ``raw`` once. ``source``: the batch already as float, if any."""
    n = len(raw)
    boxes = sample_crop_boxes(raw.sizes, aug, rng, regions)
    flip = rng.rand(n) < aug.flip_p
    colour = sample_color_params(n, aug, rng)
    images = raw.images if source is None else source

    def render(rows: slice) -> torch.Tensor:
        x = render_crops(images[rows], boxes[rows], aug.size)
        if source is not None:
            x = x.div_(255.0)
        x = apply_color(x, colour.rows(rows), aug)
        _apply_to(x, flip[rows], lambda xs, _: xs.flip(-1))
        return normalize(x, aug)

    wh = raw.sizes.detach().cpu().flip(1).repeat(1, 2).float()
    return View(_map_row_chunks(n, images.device, render), boxes / wh, flip)


RegionFn = Callable[[RawBatch, StepRNG], "torch.Tensor | None"]


class TwoViewBatch:
    """The default batch function: two independently augmented views of every image.

    Returns ``{"view1", "view2": float (N,3,S,S); "box1", "box2": normalised crop boxes;
    "flip1", "flip2": bool; "index": dataset indices; "meta": per-image metadata}``.
    ``regions(raw, rng)``, if given, returns normalised per-image crop regions (NaN rows =
    whole image); both views are then cropped inside them.
    """

    def __init__(self, augs: Sequence[ViewAug], regions: RegionFn | None = None) -> None:
        if len(augs) != 2:
            raise ConfigError(f"two views expected, got {len(augs)} augmentation settings")
        self.augs, self.regions = tuple(augs), regions

    @classmethod
    def from_cfg(cls, d: dict[str, Any] | None, regions: RegionFn | None = None) -> "TwoViewBatch":
        """From the recipe's ``augment`` section: shared keys, overridden by ``view1``/``view2``."""
        d = dict(d or {})
        v1, v2 = d.pop("view1", {}) or {}, d.pop("view2", {}) or {}
        return cls([ViewAug.from_cfg(v1, **d), ViewAug.from_cfg(v2, **d)], regions)

    def __call__(self, raw: RawBatch, rng: StepRNG) -> dict[str, Any]:
        regions = self.regions(raw, rng) if self.regions is not None else None
        source = raw.images.float()
        out: dict[str, Any] = {"index": raw.index, "meta": raw.meta}
        for k, aug in enumerate(self.augs, start=1):
            v = make_view(raw, aug, rng, regions, source)
            out[f"view{k}"], out[f"box{k}"], out[f"flip{k}"] = v.image, v.box, v.flip
        return out
