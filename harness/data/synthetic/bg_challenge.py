"""Backgrounds Challenge (ImageNet-9 style) built from single-object synthetic images.

``bg_challenge/<variant>/{train,val}/<NN_class>/<name>.JPEG`` for the eight variants and
``bg_challenge/fg_mask/{train,val}/<NN_class>/<name>.npy`` (uint8 0/1 object masks).
``original`` images are biased in both splits (a class sits on its preferred background
family with probability ``bias``), as natural images are; the variants follow the
published definitions:

- only_fg: the object on black; no_fg: the object's mask blacked out;
- only_bg_b: the object's box blacked out; only_bg_t: the box filled by tiling the
  largest background strip beside it;
- mixed_same / mixed_rand / mixed_next: the object pasted, at its own position, onto the
  only_bg_t background of another image of the same class / a random class / the next
  class (``(k + 1) mod 9``). mixed_rand backgrounds are therefore nearly unbiased.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.data import layout
from harness.data.layout import SYNTHETIC_CLASSES

from .common import save_jpeg, stream
from .plan import Single, pick_family, render_single

VARIANTS = ("original", "only_fg", "no_fg", "only_bg_b", "only_bg_t", "mixed_same", "mixed_rand", "mixed_next")


def class_folder(k: int) -> str:
    return f"{k:02d}_{SYNTHETIC_CLASSES[k]}"


def image_name(k: int, i: int) -> str:
    return f"syn{k:02d}_{i:05d}"


def tile_fill(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """``image`` with ``box`` filled by tiling the largest strip of the image beside it."""
    H, W = image.shape[:2]
    x0, y0, x1, y1 = box
    strips = [image[:y0, :], image[y1:, :], image[:, :x0], image[:, x1:]]
    strip = max(strips, key=lambda s: (s.shape[0] * s.shape[1], s.shape[0]))
    out = image.copy()
    bh, bw = y1 - y0, x1 - x0
    if strip.size == 0:
        out[y0:y1, x0:x1] = image.reshape(-1, 3).mean(axis=0).astype(np.uint8)
        return out
    reps = (-(-bh // strip.shape[0]), -(-bw // strip.shape[1]), 1)
    out[y0:y1, x0:x1] = np.tile(strip, reps)[:bh, :bw]
    return out


def render_bg_single(seed: int, split: str, k: int, i: int, side: int, bias: float | None) -> Single:
    rng = stream(seed, "bg_challenge", split, k, i)
    return render_single(rng, k, side, side, pick_family(rng, SYNTHETIC_CLASSES[k], bias))


def paste(background: np.ndarray, fg: Single) -> np.ndarray:
    out = background.copy()
    out[fg.mask] = fg.image[fg.mask]
    return out


def variant_images(item: Single, pick: dict[str, Single]) -> dict[str, np.ndarray]:
    x0, y0, x1, y1 = item.box
    only_fg = np.zeros_like(item.image)
    only_fg[item.mask] = item.image[item.mask]
    no_fg = item.image.copy()
    no_fg[item.mask] = 0
    only_bg_b = item.image.copy()
    only_bg_b[y0:y1, x0:x1] = 0
    return {
        "original": item.image, "only_fg": only_fg, "no_fg": no_fg, "only_bg_b": only_bg_b,
        "only_bg_t": tile_fill(item.image, item.box),
        **{v: paste(tile_fill(pick[v].image, pick[v].box), item) for v in ("mixed_same", "mixed_rand", "mixed_next")},
    }


def write_bg_challenge(root: Path, seed: int, side: int, per_class: tuple[int, int], bias: float) -> dict[str, int]:
    base = root / layout.BG_CHALLENGE
    counts = {}
    n_cls = len(SYNTHETIC_CLASSES)
    for split, n in (("train", per_class[0]), ("val", per_class[1])):
        items = [[render_bg_single(seed, split, k, i, side, bias) for i in range(n)] for k in range(n_cls)]
        for k in range(n_cls):
            for i in range(n):
                rng = stream(seed, "bg_challenge-mix", split, k, i)
                same = (i + 1 + int(rng.integers(n - 1))) % n if n > 1 else i
                rand_k = int(rng.integers(n_cls))
                pick = {"mixed_same": items[k][same], "mixed_rand": items[rand_k][int(rng.integers(n))],
                        "mixed_next": items[(k + 1) % n_cls][int(rng.integers(n))]}
                name = image_name(k, i)
                for variant, img in variant_images(items[k][i], pick).items():
                    save_jpeg(img, base / variant / split / class_folder(k) / f"{name}.JPEG")
                mask_path = base / "fg_mask" / split / class_folder(k) / f"{name}.npy"
                mask_path.parent.mkdir(parents=True, exist_ok=True)
                np.save(mask_path, items[k][i].mask.astype(np.uint8))
        counts[f"bg_challenge/{split} images per variant"] = n * n_cls
    counts["bg_challenge variants"] = len(VARIANTS)
    return counts
