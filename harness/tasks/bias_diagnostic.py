"""Coupling and positional bias of a backbone's RoI features, on rendered synthetic scenes.

The two failure modes of dense (RoI-level) features named by D3SSL (arXiv 2303.16947),
measured on scenes built with the synthetic scene API
(:mod:`harness.data.synthetic.scenes`), whose object masks give exact boxes:

- **coupling**: how much an object's RoI feature changes when only its surroundings
  change. Each object is rendered once and pasted at one fixed place (on top, never
  occluded) into ``contexts`` scenes that differ (a) only in the background (no other
  objects) and (b) only in the neighbouring objects (same background, 1-3 other objects
  whose boxes do not overlap the object's box). Per object: ``1 - mean cosine`` between
  the RoI features of its contexts; ``coupling_background`` / ``coupling_neighbours`` are
  the means over objects of (a) / (b) and ``coupling`` their average. Plain cosine
  distance, in [0, 2] (in practice [0, 1]); 0 = the feature ignores the surroundings.
  ``coupling_relative`` divides it by the mean cosine distance between *different*
  objects (scene of context 0 of (a)), which makes it insensitive to how spread out a
  backbone's features are overall.
- **position_r2**: how well the object's position can be decoded linearly from its RoI
  feature. ``position_objects`` scenes, each with one random object at a uniformly random
  place on a random background of a family without large-scale structure
  (``position_families``: no sky gradient, no horizon, so the pixels around the object
  carry no position cue of their own); a ridge regression (features standardised on the train
  part, the penalty chosen by 5-fold cross-validation on it) maps the RoI feature to the
  normalised box centre ``(cx / W, cy / H)``; reported is the R^2 on the held-out
  ``test_fraction`` of the objects, averaged over x and y. 1 = position fully decodable,
  0 = no better than the mean; it can be negative.

RoI feature of a level: RoIAlign (``aligned=True``) of the object's box to ``roi_size`` x
``roi_size`` cells of a feature map, averaged. ``c4`` samples ``layer3`` (stride 16),
``c5`` samples ``layer4`` (stride 32), ``c4head`` runs ``layer4`` on the RoIAlign of
``layer3`` before averaging (the res5 RoI head of Faster R-CNN C4, SoCo C4 and D3SSL).
On a ViT the levels are its patch tokens at the patch stride: ``c4`` after the last block
of the third quarter of the depth (block 8 of 12, as ``layer3`` in the dense probes), ``c5``
after the last block, both through the final layer norm; ``c4head`` RoI-aligns the raw
``c4`` tokens and runs the remaining blocks and the final norm on each RoI's tokens alone.
``level`` picks the level of the headline ``coupling`` and ``position_r2`` (default
``c4head``); every level in ``levels`` is also reported with a ``_<level>`` suffix. All
metrics: lower is better; none is a percentage. The scenes depend only on
``scene_seed``, so every backbone is measured on the same images; the data root is not
read.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.data.images import IMAGENET_MEAN, IMAGENET_STD
from harness.api import Task, TaskContext, TaskResult
from harness.core.errors import ConfigError
from harness.core.config_section import checked_section, field_names

LEVELS = {"c4": 16, "c4head": 16, "c5": 32}  # level -> stride of the map RoIAlign samples


@dataclass(frozen=True)
class DiagnosticCfg:
    """The task's preset (``benchmarks/tasks/bias_diagnostic.yaml``)."""

    image_size: int = 96
    object_size: tuple[float, float] = (0.28, 0.42)  # object side / image side
    coupling_objects: int = 32
    contexts: int = 4
    neighbours: tuple[int, int] = (1, 3)
    position_objects: int = 320
    position_families: tuple[str, ...] = ("carpet", "wood", "grass", "sand", "brick", "tile", "wallpaper")
    test_fraction: float = 0.3
    level: str = "c4head"
    levels: tuple[str, ...] = ("c4", "c4head", "c5")
    roi_size: int = 7
    ridge_alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
    scene_seed: int = 0
    batch_size: int = 64
    threads: int | None = None

    @classmethod
    def from_cfg(cls, d: dict[str, Any] | None) -> "DiagnosticCfg":
        d = checked_section(d, field_names(cls), "bias_diagnostic preset")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        cfg = cls(**d)
        if cfg.level not in LEVELS or any(lv not in LEVELS for lv in cfg.levels):
            raise ConfigError(f"bias_diagnostic: levels must be among {sorted(LEVELS)}, got {cfg.level!r}/{cfg.levels}")
        if cfg.contexts < 2 or cfg.coupling_objects < 2:
            raise ConfigError("bias_diagnostic: contexts and coupling_objects must be >= 2")
        if not 0 < cfg.test_fraction < 1 or cfg.position_objects < 20:
            raise ConfigError("bias_diagnostic: need 0 < test_fraction < 1 and position_objects >= 20")
        from harness.data.synthetic.scenes import FAMILIES

        if not cfg.position_families or set(cfg.position_families) - set(FAMILIES):
            raise ConfigError(f"bias_diagnostic: position_families must be among {FAMILIES}, got {cfg.position_families}")
        if not 0 < cfg.object_size[0] <= cfg.object_size[1] < 0.8:
            raise ConfigError(f"bias_diagnostic: object_size must satisfy 0 < lo <= hi < 0.8, got {cfg.object_size}")
        return cfg


# ---------------------------------------------------------------- scenes
@dataclass
class SceneSet:
    """Rendered images (uint8 ``(N, S, S, 3)``) and the target object's box in each."""

    images: list[np.ndarray] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)

    def add(self, image: np.ndarray, box: tuple[int, int, int, int] | None) -> None:
        if box is None:
            raise RuntimeError("bias_diagnostic: the target object ended up invisible")
        self.images.append(image)
        self.boxes.append(box)


def _object(rng: np.random.Generator, cfg: DiagnosticCfg, category: str | None = None) -> Any:
    from harness.data.layout import SYNTHETIC_CLASSES
    from harness.data.synthetic.scenes import render_object

    cat = category or SYNTHETIC_CLASSES[int(rng.integers(len(SYNTHETIC_CLASSES)))]
    side = int(round(rng.uniform(*cfg.object_size) * cfg.image_size))
    return render_object(cat, max(6, side), float(rng.uniform(-25, 25)), None, rng, float(rng.uniform(0.8, 1.25)))


def _place_inside(rng: np.random.Generator, patch: Any, size: int) -> tuple[float, float]:
    """A centre that keeps the whole patch inside the image."""
    ph, pw = patch.mask.shape
    return (float(rng.uniform(pw / 2, max(pw / 2, size - pw / 2))),
            float(rng.uniform(ph / 2, max(ph / 2, size - ph / 2))))


def _box_of(patch: Any, cx: float, cy: float) -> tuple[int, int, int, int]:
    ph, pw = patch.mask.shape
    x0, y0 = int(round(cx - pw / 2)), int(round(cy - ph / 2))
    return x0, y0, x0 + pw, y0 + ph


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def coupling_scenes(cfg: DiagnosticCfg) -> tuple[SceneSet, SceneSet]:
    """(a) background-only and (b) neighbour-only context sets; object ``i``'s contexts
    are rows ``i * contexts .. (i + 1) * contexts - 1``."""
    from harness.data.synthetic.common import stream
    from harness.data.synthetic.scenes import FAMILIES, Placement, compose, render_background

    s = cfg.image_size
    bg_set, nb_set = SceneSet(), SceneSet()
    for i in range(cfg.coupling_objects):
        rng = stream(cfg.scene_seed, "bias_diagnostic", "coupling", i)
        target = _object(rng, cfg)
        cx, cy = _place_inside(rng, target, s)
        fams = rng.permutation(len(FAMILIES))
        for c in range(cfg.contexts):
            bg = render_background(FAMILIES[int(fams[c % len(FAMILIES)])], s, s, rng)
            comp = compose(bg, [Placement(target, cx, cy)])
            bg_set.add(comp.image, comp.boxes[0])
        bg = render_background(FAMILIES[int(fams[0])], s, s, rng)
        tbox = _box_of(target, cx, cy)
        for c in range(cfg.contexts):
            others: list[Placement] = []
            for _ in range(int(rng.integers(cfg.neighbours[0], cfg.neighbours[1] + 1))):
                patch = _object(rng, cfg)
                for _try in range(50):
                    ox, oy = _place_inside(rng, patch, s)
                    if not _overlaps(_box_of(patch, ox, oy), tbox):
                        others.append(Placement(patch, ox, oy))
                        break
            comp = compose(bg, others + [Placement(target, cx, cy)])
            nb_set.add(comp.image, comp.boxes[-1])
    return bg_set, nb_set


def position_scenes(cfg: DiagnosticCfg) -> tuple[SceneSet, np.ndarray]:
    """One object per scene at a uniform random place; returns the scenes and the
    normalised box centres ``(N, 2)``."""
    from harness.data.synthetic.common import stream
    from harness.data.synthetic.scenes import Placement, compose, render_background

    s = cfg.image_size
    fams = cfg.position_families
    out = SceneSet()
    for i in range(cfg.position_objects):
        rng = stream(cfg.scene_seed, "bias_diagnostic", "position", i)
        target = _object(rng, cfg)
        cx, cy = _place_inside(rng, target, s)
        bg = render_background(fams[int(rng.integers(len(fams)))], s, s, rng)
        comp = compose(bg, [Placement(target, cx, cy)])
        out.add(comp.image, comp.boxes[0])
    b = np.asarray(out.boxes, dtype=np.float64)
    centres = np.stack([(b[:, 0] + b[:, 2]) / 2 / s, (b[:, 1] + b[:, 3]) / 2 / s], axis=1)
    return out, centres


# ---------------------------------------------------------------- features
def resnet_levels(net: Any, x: Any, levels: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, int], Any]:
    """A ResNet's ``c4`` / ``c5`` maps, their strides and the ``c4head`` RoI head (``layer4``)."""
    c4 = net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x)))))))
    maps = {"c4": c4, "c4head": c4}
    if "c5" in levels:
        maps["c5"] = net.layer4(c4)
    return maps, LEVELS, net.layer4


def vit_levels(net: Any, x: Any, levels: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, int], Any]:
    """A ViT's ``c4`` / ``c5`` token maps (see the module docstring), the patch stride and the
    ``c4head`` RoI head (the blocks after ``c4`` and the final norm on each RoI's tokens)."""
    from harness.core.vit import norm_map, patch_size, stage_blocks

    c4_block = stage_blocks(len(net.blocks))[2]
    raw, last = net.forward_intermediates(x, indices=[c4_block, len(net.blocks) - 1], norm=False,
                                         output_fmt="NCHW", intermediates_only=True)

    def head(f: Any) -> Any:
        tokens = f.flatten(2).transpose(1, 2)
        for block in net.blocks[c4_block + 1:]:
            tokens = block(tokens)
        return net.norm(tokens).transpose(1, 2).reshape(f.shape)

    stride = patch_size(net)
    return {"c4": norm_map(net.norm, raw), "c4head": raw, "c5": norm_map(net.norm, last)}, dict.fromkeys(
        LEVELS, stride), head


def roi_features(net: Any, scenes: SceneSet, cfg: DiagnosticCfg, device: str) -> dict[str, np.ndarray]:
    """Mean-pooled RoIAlign features of each scene's target box, per level: ``(N, C)``."""
    import torch
    from torchvision.ops import roi_align

    from harness.core.vit import is_vit_model

    levels_of = vit_levels if is_vit_model(net) else resnet_levels

    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    out: dict[str, list[np.ndarray]] = {lv: [] for lv in cfg.levels}
    with torch.no_grad():
        for start in range(0, len(scenes.images), cfg.batch_size):
            imgs = np.stack(scenes.images[start:start + cfg.batch_size])
            x = torch.from_numpy(imgs).to(device).permute(0, 3, 1, 2).float().div_(255.0).sub_(mean).div_(std)
            boxes = torch.tensor(scenes.boxes[start:start + cfg.batch_size], dtype=torch.float32, device=device)
            rois = torch.cat([torch.arange(len(boxes), device=device, dtype=torch.float32)[:, None], boxes], dim=1)
            maps, strides, head = levels_of(net, x, cfg.levels)
            for lv in cfg.levels:
                f = roi_align(maps[lv].float(), rois, output_size=(cfg.roi_size, cfg.roi_size),
                              spatial_scale=1.0 / strides[lv], sampling_ratio=2, aligned=True)
                if lv == "c4head":
                    f = head(f)
                out[lv].append(f.mean(dim=(2, 3)).double().cpu().numpy())
    return {lv: np.concatenate(v) for lv, v in out.items()}


# ---------------------------------------------------------------- metrics
def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def coupling_score(features: np.ndarray, contexts: int) -> float:
    """Mean over objects of ``1 - mean pairwise cosine`` between its context features;
    ``features`` rows are grouped per object (``contexts`` consecutive rows each)."""
    f = _unit(features).reshape(-1, contexts, features.shape[-1])
    sim = np.einsum("ncd,ned->nce", f, f)
    iu = np.triu_indices(contexts, k=1)
    return float(np.mean(1.0 - sim[:, iu[0], iu[1]]))


def cross_object_distance(features: np.ndarray, contexts: int) -> float:
    """Mean cosine distance between the first-context features of consecutive objects."""
    f = _unit(features.reshape(-1, contexts, features.shape[-1])[:, 0])
    return float(np.mean(1.0 - np.sum(f * np.roll(f, -1, axis=0), axis=1)))


def _ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge with intercept (dual form): returns ``(weights, bias)``."""
    xm, ym = x.mean(0), y.mean(0)
    xc, yc = x - xm, y - ym
    gram = xc @ xc.T
    coef = xc.T @ np.linalg.solve(gram + alpha * np.eye(len(xc)), yc)
    return coef, ym - xm @ coef


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination, averaged over the output columns."""
    sse = ((y - pred) ** 2).sum(0)
    sst = np.maximum(((y - y.mean(0)) ** 2).sum(0), 1e-12)
    return float(np.mean(1.0 - sse / sst))


def position_decodability(features: np.ndarray, targets: np.ndarray, test_fraction: float,
                          alphas: tuple[float, ...], folds: int = 5) -> tuple[float, float]:
    """Held-out R^2 of a ridge regression features -> targets; returns ``(r2, alpha)``.

    The first ``1 - test_fraction`` of the rows train (standardised with their own mean
    and std; penalty by ``folds``-fold cross-validation on them), the rest test.
    """
    n_train = int(round(len(features) * (1 - test_fraction)))
    xtr, xte = features[:n_train], features[n_train:]
    ytr, yte = targets[:n_train], targets[n_train:]
    mu, sd = xtr.mean(0), xtr.std(0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    fold_of = np.arange(n_train) % folds
    best, best_alpha = np.inf, alphas[0]
    for alpha in alphas:
        err = 0.0
        for k in range(folds):
            tr, va = fold_of != k, fold_of == k
            coef, bias = _ridge_fit(xtr[tr], ytr[tr], alpha)
            err += float(((xtr[va] @ coef + bias - ytr[va]) ** 2).sum())
        if err < best:
            best, best_alpha = err, alpha
    coef, bias = _ridge_fit(xtr, ytr, best_alpha)
    return r2_score(yte, xte @ coef + bias), float(best_alpha)


def _fingerprint(*sets: SceneSet) -> str:
    h = hashlib.sha256()
    for s in sets:
        for img, box in zip(s.images, s.boxes):
            h.update(img.tobytes())
            h.update(repr(box).encode())
    return h.hexdigest()


class BiasDiagnostic(Task):
    """See the module docstring."""

    def run(self, ctx: TaskContext) -> TaskResult:
        import torch

        from harness.core.checkpoints import load_backbone

        cfg = DiagnosticCfg.from_cfg(ctx.cfg)
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        net = load_backbone(ctx.backbone).to(ctx.device).eval()
        bg_set, nb_set = coupling_scenes(cfg)
        pos_set, centres = position_scenes(cfg)
        feats_bg = roi_features(net, bg_set, cfg, ctx.device)
        feats_nb = roi_features(net, nb_set, cfg, ctx.device)
        feats_pos = roi_features(net, pos_set, cfg, ctx.device)
        metrics: dict[str, float] = {}
        extra: dict[str, Any] = {"ridge_alpha": {}}
        for lv in cfg.levels:
            c_bg = coupling_score(feats_bg[lv], cfg.contexts)
            c_nb = coupling_score(feats_nb[lv], cfg.contexts)
            coupling = (c_bg + c_nb) / 2
            spread = cross_object_distance(feats_bg[lv], cfg.contexts)
            r2, alpha = position_decodability(feats_pos[lv], centres, cfg.test_fraction, cfg.ridge_alphas)
            metrics.update({f"coupling_{lv}": coupling, f"coupling_background_{lv}": c_bg,
                            f"coupling_neighbours_{lv}": c_nb,
                            f"coupling_relative_{lv}": coupling / spread if spread > 1e-12 else 0.0,
                            f"position_r2_{lv}": r2})
            extra["ridge_alpha"][lv] = alpha
        metrics["coupling"] = metrics[f"coupling_{cfg.level}"]
        metrics["position_r2"] = metrics[f"position_r2_{cfg.level}"]
        ctx.progress(1, 1)
        return TaskResult(
            metrics=metrics, higher_is_better={k: False for k in metrics},
            dataset={"name": "synthetic scenes (scene API)", "scene_seed": cfg.scene_seed,
                     "size": {"coupling_images": len(bg_set.images) + len(nb_set.images),
                              "position_images": len(pos_set.images)},
                     "fingerprint": _fingerprint(bg_set, nb_set, pos_set)},
            framework={"name": "torch"}, extra=extra)
