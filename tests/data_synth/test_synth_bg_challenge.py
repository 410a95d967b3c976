from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from harness.data import layout
from harness.data.layout import SYNTHETIC_CLASSES
from harness.data.synthetic.bg_challenge import VARIANTS, tile_fill
from harness.data.synthetic.sizes import TINY


def files(root: Path, variant: str, split: str) -> list[str]:
    return sorted(str(p.relative_to(root / variant / split)) for p in (root / variant / split).glob("*/*.JPEG"))


def test_variants_share_one_file_list_and_masks(synth_root: Path) -> None:
    base = synth_root / layout.BG_CHALLENGE
    for split, n in (("train", TINY.bg_per_class[0]), ("val", TINY.bg_per_class[1])):
        ref = files(base, "original", split)
        assert len(ref) == n * len(SYNTHETIC_CLASSES)
        assert sorted({r.split("/")[0] for r in ref}) == [f"{k:02d}_{c}" for k, c in enumerate(SYNTHETIC_CLASSES)]
        for v in VARIANTS:
            assert files(base, v, split) == ref
        masks = sorted(str(p.relative_to(base / "fg_mask" / split)) for p in (base / "fg_mask" / split).glob("*/*.npy"))
        assert masks == [r.replace(".JPEG", ".npy") for r in ref]


def test_variant_definitions_hold(synth_root: Path) -> None:
    base = synth_root / layout.BG_CHALLENGE
    name = "03_kite/syn03_00001"
    mask = np.load(base / "fg_mask" / "val" / f"{name}.npy").astype(bool)
    img = {v: np.asarray(Image.open(base / v / "val" / f"{name}.JPEG"), np.float32) for v in VARIANTS}
    assert mask.shape == img["original"].shape[:2] and mask.any() and not mask.all()
    inner = mask.copy()
    inner[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    outer = ~mask
    outer[1:-1, 1:-1] &= ~mask[:-2, 1:-1] & ~mask[2:, 1:-1] & ~mask[1:-1, :-2] & ~mask[1:-1, 2:]
    assert img["only_fg"][outer].mean() < 12  # black outside the object (JPEG ringing aside)
    assert img["no_fg"][inner].mean() < 12
    for v in ("mixed_same", "mixed_rand", "mixed_next"):  # same object pixels, new surroundings
        assert np.abs(img[v][inner] - img["original"][inner]).mean() < 12


def test_tile_fill_replaces_the_box_with_the_surroundings() -> None:
    img = np.zeros((10, 10, 3), np.uint8)
    img[:, :3] = 200
    img[4:8, 4:8] = 50
    out = tile_fill(img, (4, 4, 8, 8))
    assert (out[4:8, 4:8] != 50).all()
    assert (out[:, :4] == img[:, :4]).all()
