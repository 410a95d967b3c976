"""Per-step batch construction of D3SSL: the two SoCo views, their corresponding RoIs,
and the extra student views of the de-coupling and de-positioning modules.

Views: ``x1`` and ``x2`` come from the shared two-view augmentation
(:class:`harness.pretrain.augment.TwoViewBatch`; the recipes make ``x1`` the whole image
and ``x2`` a random resized crop, as SoCo does). Each image carries proposals in
normalised source-image coordinates (``meta["boxes"]``, ``(n, 4)`` ``x0, y0, x1, y1``).
Per step and image, ``K`` proposals that intersect both crops are drawn at random and
clipped into each view (SoCo); when fewer than ``K`` exist the rest are jittered copies
(jitter drawn per view), and with none the overlap of the two crops is the RoI.

A module view spec (recipe ``decoupling.views`` / ``depositioning.views``) is a dict:
``source`` (``x1``/``x2``), ``cutout`` (bool), ``background`` (``none``/``in_place``/
``moved``), ``small`` (bool), ``targets`` (list of ``x1``/``x2``). It is built, on a
random subset of ``sample_ratio`` of the batch, as: region cut-out -> background
replacement -> down-scaled / re-positioned view. A cut-out is filled with the new
background when ``background`` is set, else as ``cutout.fill`` says: ``other_image``
(default, the follow-up code's behaviour: the same pixels of another image of the batch)
or ``mean`` (the mean colour).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from harness.core.errors import ConfigError
from harness.pretrain.augment import StepRNG, TwoViewBatch
from harness.pretrain.data import RawBatch, hash_seed
from harness_methods.d3ssl.recipe import section
from harness_methods.d3ssl.region_aug import background_replace, downscale_reposition, region_cutout

MODULES = ("decoupling", "depositioning")
VIEW_KEYS = {"source", "cutout", "background", "small", "targets"}
BACKGROUND_MODES = ("none", "in_place", "moved")
CUTOUT_FILLS = ("other_image", "mean")
SOURCES = ("x1", "x2")


@dataclass(frozen=True)
class ViewSpec:
    source: str
    cutout: bool
    background: str
    small: bool
    targets: tuple[str, ...]

    @classmethod
    def from_cfg(cls, d: dict[str, Any], where: str) -> "ViewSpec":
        if not isinstance(d, dict) or set(d) - VIEW_KEYS:
            raise ConfigError(f"{where}: a view is a mapping with keys {sorted(VIEW_KEYS)}, got {d!r}")
        spec = cls(str(d.get("source", "x1")), bool(d.get("cutout", False)), str(d.get("background", "none")),
                   bool(d.get("small", False)), tuple(d.get("targets", ["x2"])))
        if spec.source not in SOURCES or any(t not in SOURCES for t in spec.targets) or not spec.targets:
            raise ConfigError(f"{where}: source/targets must be among {SOURCES}, got {d!r}")
        if spec.background not in BACKGROUND_MODES:
            raise ConfigError(f"{where}: background must be one of {BACKGROUND_MODES}, got {spec.background!r}")
        if not (spec.cutout or spec.small or spec.background != "none"):
            raise ConfigError(f"{where}: the view {d!r} applies no region augmentation")
        return spec


@dataclass(frozen=True)
class ModuleCfg:
    name: str
    weight: float
    sample_ratio: float
    views: tuple[ViewSpec, ...]
    invert_half: bool = False  # half of this module's cut-out samples use the mask's complement


def module_cfgs(cfg: dict[str, Any]) -> list[ModuleCfg]:
    """The enabled modules of a recipe, validated."""
    out = []
    for name in MODULES:
        sec = section(cfg, name)
        if not sec.get("enabled", False):
            continue
        ratio = float(sec.get("sample_ratio", 1.0))
        if not 0 < ratio <= 1:
            raise ConfigError(f"recipe {name}.sample_ratio must be in (0, 1], got {ratio}")
        views = tuple(ViewSpec.from_cfg(v, f"recipe {name}.views[{i}]") for i, v in enumerate(sec.get("views") or []))
        if not views:
            raise ConfigError(f"recipe {name}: enabled but no views listed")
        out.append(ModuleCfg(name, float(sec.get("weight", 1.0)), ratio, views, bool(sec.get("invert_half", False))))
    return out


def _to_view(boxes: torch.Tensor, crop: torch.Tensor, flip: torch.Tensor, size: int) -> torch.Tensor:
    """Normalised source boxes ``(K, 4)`` -> pixels of a view with normalised ``crop`` ``(4,)``."""
    cw, chh = crop[2] - crop[0], crop[3] - crop[1]
    x0 = ((boxes[:, 0] - crop[0]) / cw).clamp(0, 1) * size
    y0 = ((boxes[:, 1] - crop[1]) / chh).clamp(0, 1) * size
    x1 = ((boxes[:, 2] - crop[0]) / cw).clamp(0, 1) * size
    y1 = ((boxes[:, 3] - crop[1]) / chh).clamp(0, 1) * size
    if bool(flip):
        x0, x1 = size - x1, size - x0
    return torch.stack([x0, y0, x1, y1], dim=1)


def _jitter(boxes: torch.Tensor, u: torch.Tensor, ratio: float) -> torch.Tensor:
    """SoCo's box jitter: shift and resize by ``U(-ratio, ratio)`` of the box's size."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    j = (u * 2 - 1) * ratio
    x0, y0 = boxes[:, 0] + j[:, 0] * w, boxes[:, 1] + j[:, 1] * h
    return torch.stack([x0, y0, x0 + w * (1 + j[:, 2]), y0 + h * (1 + j[:, 3])], dim=1)


def select_rois(meta: list[dict[str, Any]], crop1: torch.Tensor, crop2: torch.Tensor, flip1: torch.Tensor,
                flip2: torch.Tensor, sizes: tuple[int, int], rng: StepRNG, k: int, max_boxes: int,
                jitter: float, min_side: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Corresponding RoIs ``(B, K, 4)`` in pixels of view 1 and view 2, and ``valid``."""
    n = len(meta)
    keys = rng.rand(n, max_boxes)
    u_pick = rng.rand(n, k)
    u_jit = rng.rand(n, 2, k, 4)
    b1 = torch.zeros((n, k, 4))
    b2 = torch.zeros((n, k, 4))
    for i in range(n):
        props = torch.as_tensor(meta[i].get("boxes", []), dtype=torch.float32).reshape(-1, 4)[:max_boxes]
        ov = torch.stack([torch.maximum(crop1[i, 0], crop2[i, 0]), torch.maximum(crop1[i, 1], crop2[i, 1]),
                          torch.minimum(crop1[i, 2], crop2[i, 2]), torch.minimum(crop1[i, 3], crop2[i, 3])])
        hit = ((props[:, 0] < ov[2]) & (props[:, 2] > ov[0]) & (props[:, 1] < ov[3]) & (props[:, 3] > ov[1])
               & (props[:, 2] > props[:, 0]) & (props[:, 3] > props[:, 1]))
        cand = props[hit]
        if len(cand) == 0:
            if ov[2] > ov[0] and ov[3] > ov[1]:
                cand = ov[None]
            else:  # crops do not overlap: the whole second crop (only its own view is valid)
                cand = crop2[i][None]
        order = keys[i, :len(cand)].argsort() if len(cand) > 1 else torch.zeros(1, dtype=torch.long)
        chosen = cand[order[:k]]
        if len(chosen) < k:  # pad with jittered copies (SoCo), jitter drawn per view below
            extra = cand[(u_pick[i, :k - len(chosen)] * len(cand)).long().clamp(max=len(cand) - 1)]
            base = torch.cat([chosen, extra])
            padded = torch.zeros(k, dtype=torch.bool)
            padded[len(chosen):] = True
        else:
            base, padded = chosen, torch.zeros(k, dtype=torch.bool)
        for v, (crop, flip, size, out) in enumerate(((crop1, flip1, sizes[0], b1), (crop2, flip2, sizes[1], b2))):
            src = torch.where(padded[:, None], _jitter(base, u_jit[i, v], jitter), base)
            out[i] = _to_view(src, crop[i], flip[i], size)
    side = lambda b: torch.minimum(b[..., 2] - b[..., 0], b[..., 3] - b[..., 1])  # noqa: E731
    valid = (side(b1) >= min_side) & (side(b2) >= min_side)
    return b1, b2, valid


def derangement(n: int, gen: torch.Generator) -> torch.Tensor:
    """A random permutation without fixed points (a random cyclic shift of a shuffled order)."""
    if n < 2:
        return torch.zeros(n, dtype=torch.long)
    order = torch.randperm(n, generator=gen)
    out = torch.empty(n, dtype=torch.long)
    out[order] = order.roll(-1)
    return out


class D3SSLBatch:
    """Batch function for the pretraining loop: ``(raw, rng) -> dict`` of tensors.

    Output keys: ``x1``, ``x2`` (normalised views), ``boxes1``, ``boxes2`` ``(B, K, 4)``,
    ``valid`` ``(B, K)``, and ``modules``: ``{module name: [view dict]}`` where a view dict
    holds ``images``, ``boxes``, ``valid``, ``index`` (rows of the batch it comes from),
    ``scale`` (RoIAlign size factor) and ``targets``.
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.two_views = TwoViewBatch.from_cfg(cfg.get("augment"))
        self.sizes = (self.two_views.augs[0].size, self.two_views.augs[1].size)
        roi = section(cfg, "roi")
        self.k = int(roi.get("per_image", 4))
        self.max_boxes = int(roi.get("max_boxes", 100))
        self.jitter = float(roi.get("jitter", 0.1))
        self.modules = module_cfgs(cfg)
        self.cutout = section(cfg, "cutout")
        self.cutout_fill = str(self.cutout.pop("fill", "other_image"))
        if self.cutout_fill not in CUTOUT_FILLS:
            raise ConfigError(f"recipe cutout.fill must be one of {CUTOUT_FILLS}, got {self.cutout_fill!r}")
        self.base_cutout = section(cfg, "base_cutout")
        small = section(cfg, "small_view")
        self.small_scale, self.small_canvas = float(small.get("scale", 0.5)), float(small.get("canvas", 0.5))

    def __call__(self, raw: RawBatch, rng: StepRNG) -> dict[str, Any]:
        views = self.two_views(raw, rng)
        x1, x2 = views["view1"], views["view2"]
        b1, b2, valid = select_rois(raw.meta, views["box1"], views["box2"], views["flip1"], views["flip2"],
                                    self.sizes, rng, self.k, self.max_boxes, self.jitter)
        dev = x1.device
        b1, b2, valid = b1.to(dev), b2.to(dev), valid.to(dev)
        gen = torch.Generator().manual_seed(hash_seed(rng.seed, rng.step, rng.rank, 0xD355))
        if self.base_cutout.get("prob", 0) > 0:  # SoCo's in-box cut-out of view 2 (seen by both networks)
            x2, _ = region_cutout(x2, b2, valid, gen, mode="box", around=False,
                                  ratio=tuple(self.base_cutout.get("ratio", (0.1, 0.3))),
                                  prob=float(self.base_cutout["prob"]))
        out: dict[str, Any] = {"x1": x1, "x2": x2, "boxes1": b1, "boxes2": b2, "valid": valid,
                               "index": views["index"], "modules": {}}
        out["modules"] = {m.name: self._module_views(m, out, gen) for m in self.modules}
        return out

    def _module_views(self, mod: ModuleCfg, batch: dict[str, Any], gen: torch.Generator) -> list[dict[str, Any]]:
        bsz = batch["x1"].shape[0]
        n = max(1, round(mod.sample_ratio * bsz))
        views = []
        for spec in mod.views:
            idx = torch.randperm(bsz, generator=gen)[:n].sort().values
            other = derangement(bsz, gen)[idx]
            dev = batch["x1"].device
            idx_d, other_d = idx.to(dev), other.to(dev)
            key = "1" if spec.source == "x1" else "2"
            images = batch[spec.source].index_select(0, idx_d)
            boxes = batch[f"boxes{key}"].index_select(0, idx_d)
            valid = batch["valid"].index_select(0, idx_d)
            others = batch["x1"].index_select(0, other_d)
            if others.shape[-2:] != images.shape[-2:]:
                others = F.interpolate(others, size=images.shape[-2:], mode="bilinear", align_corners=False,
                                       antialias=True)
            background = others if spec.background != "none" else None
            if spec.cutout:
                fill = background if background is not None or self.cutout_fill == "mean" else others
                images, _ = self._cutout(images, boxes, valid, gen, fill, mod.invert_half)
            if background is not None:
                images, boxes = background_replace(images, boxes, valid, background, gen,
                                                   reposition=spec.background == "moved")
            scale = 1.0
            if spec.small:
                images, boxes = downscale_reposition(images, boxes, gen, scale=self.small_scale,
                                                     canvas=self.small_canvas)
                scale = self.small_scale
            views.append({"images": images, "boxes": boxes, "valid": valid, "index": idx_d,
                          "scale": scale, "targets": spec.targets})
        return views

    def _cutout(self, images: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor, gen: torch.Generator,
                background: torch.Tensor | None, invert_half: bool) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.cutout
        return region_cutout(images, boxes, valid, gen, mode=str(c.get("mode", "rcc")),
                             ratio=tuple(c.get("ratio", (0.2, 0.6))), around=bool(c.get("around", True)),
                             band=float(c.get("band", 0.5)), prob=float(c.get("prob", 1.0)),
                             pseudo_boxes=str(c.get("pseudo_boxes", "rois")),
                             invert_half=invert_half, fill_source=background)
