"""Open Images (V6 file names) layout: images, box / label / mask CSVs, mask PNGs.

``openimages/{train,validation}/<16-hex ImageID>.jpg``; ``oidv6-train-annotations-bbox.csv``
(21 columns) and ``validation-annotations-bbox.csv`` (its first 13); human image labels
(positives and one verified negative per image); object segmentations with 1-bit mask
PNGs in ``masks/{train,validation}/<ImageID>_<mid without slashes>_<BoxID>.png``, a
third of them stored at a different resolution than their image, as in the real set;
``class-descriptions-boxable.csv`` (no header) and ``bbox_labels_600_hierarchy.json``.
The nine classes get made-up, well-formed MIDs (:data:`MIDS`). Coordinates are
normalised to [0, 1]; crowd clusters are ``IsGroupOf=1`` boxes without masks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from harness.data import layout
from harness.data.layout import SYNTHETIC_CLASSES

from .common import fmt, hex_id, save_bitmask_png, save_jpeg, stream, write_csv, write_json
from .plan import Scene, render_scene, sample_scene
from .sizes import Sizes

MIDS = {c: f"/m/0sy{k + 1:03d}" for k, c in enumerate(SYNTHETIC_CLASSES)}
DISPLAY = {c: c.capitalize() for c in SYNTHETIC_CLASSES}
ROOT_MID = "/m/0bl9f"  # "Entity", the hierarchy root in the real file

BBOX_COLUMNS = ("ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax", "IsOccluded",
                "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside", "XClick1X", "XClick2X", "XClick3X", "XClick4X",
                "XClick1Y", "XClick2Y", "XClick3Y", "XClick4Y")
LABEL_COLUMNS = ("ImageID", "Source", "LabelName", "Confidence")
SEG_COLUMNS = ("MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax", "PredictedIoU", "Clicks")
FILES = {
    "train": ("oidv6-train-annotations-bbox.csv", "train-annotations-human-imagelabels-boxable.csv",
              "train-annotations-object-segmentation.csv"),
    "validation": ("validation-annotations-bbox.csv", "validation-annotations-human-imagelabels-boxable.csv",
                   "validation-annotations-object-segmentation.csv"),
}


def extreme_clicks(mask: np.ndarray, W: int, H: int) -> tuple[list[str], list[str]]:
    """Left-, right-, top- and bottom-most mask points, as the four extreme-click columns."""
    ys, xs = np.nonzero(mask)
    picks = [int(np.argmin(xs)), int(np.argmax(xs)), int(np.argmin(ys)), int(np.argmax(ys))]
    return [fmt((xs[p] + 0.5) / W) for p in picks], [fmt((ys[p] + 0.5) / H) for p in picks]


def mask_clicks(mask: np.ndarray, rng: np.random.Generator, W: int, H: int) -> str:
    """A few simulated corrective clicks: ``x y 1`` inside the mask, ``x y 0`` outside."""
    pts = []
    for inside in (True, True, False):
        ys, xs = np.nonzero(mask if inside else ~mask)
        if len(xs):
            k = int(rng.integers(len(xs)))
            pts.append(f"{fmt((xs[k] + 0.5) / W, 5)} {fmt((ys[k] + 0.5) / H, 5)} {int(inside)}")
    return ";".join(pts)


def image_rows(split: str, image_id: str, scene: Scene, rng: np.random.Generator, masks_dir: Path):
    H, W = scene.image.shape[:2]
    boxes, labels, segs = [], [], []
    present = sorted({inst.category for inst in scene.instances})
    for inst in scene.instances:
        x0, y0, x1, y1 = inst.box
        coords = [fmt(x0 / W), fmt(x1 / W), fmt(y0 / H), fmt(y1 / H)]
        occluded = int(inst.area < 0.9 * inst.full_area)
        truncated = int(x0 == 0 or y0 == 0 or x1 == W or y1 == H)
        depiction = int(rng.random() < 0.03)
        row = [image_id, "xclick", MIDS[inst.category], "1", *coords, occluded, truncated, int(inst.iscrowd), depiction, 0]
        if split == "train":
            if rng.random() < 0.8 and not inst.iscrowd:
                cx, cy = extreme_clicks(inst.mask, W, H)
                row += cx + cy
            else:
                row[1] = "activemil"
                row += ["-1"] * 8
        boxes.append(row)
        if not inst.iscrowd:
            box_id = hex_id(0, image_id, len(segs), length=8)
            name = f"{image_id}_{MIDS[inst.category].replace('/', '')}_{box_id}.png"
            mask = inst.mask
            if rng.random() < 1 / 3:  # stored at another resolution, as many real masks are
                f = float(rng.choice([0.5, 2.0]))
                mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(
                    (max(1, int(W * f)), max(1, int(H * f))), Image.NEAREST)) > 127
            save_bitmask_png(mask, masks_dir / name)
            segs.append([name, image_id, MIDS[inst.category], box_id, *coords, fmt(rng.uniform(0.7, 0.98), 5),
                         mask_clicks(inst.mask, rng, W, H)])
    for c in present:
        labels.append([image_id, "verification", MIDS[c], "1"])
    absent = [c for c in SYNTHETIC_CLASSES if c not in present]
    if absent:
        labels.append([image_id, "verification", MIDS[absent[int(rng.integers(len(absent)))]], "0"])
    return boxes, labels, segs


def write_openimages(root: Path, seed: int, sz: Sizes, bias: float) -> dict[str, int]:
    base = root / layout.OPEN_IMAGES
    counts = {}
    for split, n in (("train", sz.openimages[0]), ("validation", sz.openimages[1])):
        entries = []
        for i in range(n):
            rng = stream(seed, "openimages", split, i)
            scene = render_scene(sample_scene(rng, sz.scene_w, sz.scene_h, sz.objects, bias, sz.crowd_prob), rng)
            image_id = hex_id(seed, "openimages", split, i)
            save_jpeg(scene.image, base / split / f"{image_id}.jpg")
            entries.append((image_id, image_rows(split, image_id, scene, rng, base / "masks" / split)))
        entries.sort(key=lambda e: e[0])  # the real CSVs are sorted by ImageID
        box_file, label_file, seg_file = FILES[split]
        header = BBOX_COLUMNS if split == "train" else BBOX_COLUMNS[:13]
        write_csv(header, (r for _, (b, _, _) in entries for r in b), base / box_file)
        write_csv(LABEL_COLUMNS, (r for _, (_, lab, _) in entries for r in lab), base / label_file)
        write_csv(SEG_COLUMNS, (r for _, (_, _, s) in entries for r in s), base / seg_file)
        counts[f"openimages/{split} images"] = n
        counts[f"openimages/{split} boxes"] = sum(len(b) for _, (b, _, _) in entries)
        counts[f"openimages/{split} masks"] = sum(len(s) for _, (_, _, s) in entries)
    write_csv(None, ([MIDS[c], DISPLAY[c]] for c in SYNTHETIC_CLASSES), base / "class-descriptions-boxable.csv")
    write_json({"LabelName": ROOT_MID, "Subcategory": [{"LabelName": MIDS[c]} for c in SYNTHETIC_CLASSES]},
               base / "bbox_labels_600_hierarchy.json")
    return counts
