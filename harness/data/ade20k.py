"""Reader of ADE20K scene parsing (ADEChallengeData2016)."""
from __future__ import annotations

from pathlib import Path

from harness.data import layout
from harness.data.fileio import MalformedDataError, MissingDataError, file_names, require_dir
from harness.data.image_sets import SegmentationSet

SPLITS = {"training": "training", "validation": "validation", "train": "training", "val": "validation"}

# Label value k (1..150) of the annotation PNGs is ADE20K_CLASSES[k - 1]; 0 is "other"
# (ignored through reduce_zero_label). Names as in objectInfo150 / mmseg's ADE20KDataset.
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
    "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table",
    "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table",
    "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island",
    "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman",
    "bottle", "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy",
    "washer", "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot",
    "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce",
    "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)


def read_ade20k(data_root: Path, split: str) -> SegmentationSet:
    """Read ADEChallengeData2016 ``split`` ("training"/"validation"; "train"/"val" accepted).

    Pairs every ``images/<split>/<stem>.jpg`` with ``annotations/<split>/<stem>.png`` (both
    directions must match). Labels are raw uint8 values 0 = other, 1..150 = classes; the
    returned set has ``reduce_zero_label=True`` and 150 ``classes``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown ADE20K split {split!r}; expected one of {sorted(SPLITS)}")
    split = SPLITS[split]
    root = Path(data_root) / layout.ADE20K
    image_dir = require_dir(root / "images" / split, f"ADE20K {split} images (ADE_*.jpg)")
    ann_dir = require_dir(root / "annotations" / split, f"ADE20K {split} annotations (ADE_*.png)")
    images = {Path(n).stem: n for n in file_names(image_dir) if n.lower().endswith(".jpg")}
    labels = {Path(n).stem for n in file_names(ann_dir) if n.lower().endswith(".png")}
    if not images:
        raise MissingDataError(image_dir, "no .jpg images; expected ADE_*.jpg")
    for stem in sorted(images):
        if stem not in labels:
            raise MissingDataError(ann_dir / f"{stem}.png", f"missing; expected the annotation of {image_dir / images[stem]}")
    orphans = sorted(labels - images.keys())
    if orphans:
        raise MalformedDataError(ann_dir / f"{orphans[0]}.png",
                                 f"annotation without an image; expected {image_dir / (orphans[0] + '.jpg')}")
    samples = [(image_dir / images[s], ann_dir / f"{s}.png") for s in sorted(images)]
    return SegmentationSet(name=f"ade20k_{split}", root=root, classes=list(ADE20K_CLASSES), samples=samples,
                           ignore_index=255, reduce_zero_label=True)
