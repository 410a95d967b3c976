"""ObjectNet-style distribution-shifted test set: ``objectnet-1.0/images/<folder>/<hash>.png``.

Only classes ObjectNet has get a folder, named as the real one (backpack, banana,
orange, toaster, vase). The shift: any rotation (upside down included), unbiased and
colour-permuted backgrounds, and in most images a new surface (a random-colour style or
another class's texture). Every PNG has a 2-px frame, as the real images do (readers
crop it). ``mappings/folder_to_objectnet_label.json`` and ``objectnet_to_imagenet_1k.json``
hold the real entries for these folders.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.data import layout
from harness.data.layout import SYNTHETIC_CLASSES

from .backgrounds import FAMILIES
from .common import hex_id, save_png, stream, write_json
from .objects import STYLES
from .plan import render_single

# ObjectNet folder -> (ObjectNet label, ImageNet-1k names), as in the real mapping files.
OBJECTNET = {
    "backpack": ("Backpack", "backpack, back pack, knapsack, packsack, rucksack, haversack"),
    "banana": ("Banana", "banana"),
    "orange": ("Orange", "orange"),
    "toaster": ("Toaster", "toaster"),
    "vase": ("Vase", "vase"),
}
FRAME = 2
FRAME_COLOR = (255, 0, 0)


def shifted_texture(rng: np.random.Generator, category: str) -> str:
    r = rng.random()
    if r < 0.3:
        return "class"
    if r < 0.45:
        others = [c for c in SYNTHETIC_CLASSES if c != category]
        return others[int(rng.integers(len(others)))]
    return STYLES[int(rng.integers(len(STYLES)))]


def write_objectnet(root: Path, seed: int, side: int, per_folder: int) -> dict[str, int]:
    base = root / layout.OBJECTNET
    inner = side - 2 * FRAME
    for folder in OBJECTNET:
        k = SYNTHETIC_CLASSES.index(folder)
        for i in range(per_folder):
            rng = stream(seed, "objectnet", folder, i)
            family = FAMILIES[int(rng.integers(len(FAMILIES)))]
            single = render_single(rng, k, inner, inner, family, size=(0.4, 0.8), rotation=(0.0, 360.0), jitter=0.2,
                                   texture=shifted_texture(rng, folder))
            perm = rng.permutation(3)
            image = single.image.copy()
            image[~single.mask] = single.image[~single.mask][:, perm]
            framed = np.empty((side, side, 3), np.uint8)
            framed[:] = FRAME_COLOR
            framed[FRAME:side - FRAME, FRAME:side - FRAME] = image
            save_png(framed, base / "images" / folder / f"{hex_id(seed, 'objectnet', folder, i, length=32)}.png")
    write_json({f: label for f, (label, _) in OBJECTNET.items()}, base / "mappings" / "folder_to_objectnet_label.json", indent=2)
    write_json({label: names for label, names in OBJECTNET.values()}, base / "mappings" / "objectnet_to_imagenet_1k.json", indent=2)
    return {"objectnet folders": len(OBJECTNET), "objectnet images": len(OBJECTNET) * per_folder}
