"""Fixtures of the dense-task tests: a small data root in the official layouts, a ResNet-18
backbone file, and task contexts with the catalog's tiny presets."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image, ImageDraw

from harness.api import TaskContext

REPO = Path(__file__).resolve().parents[2]
# (name, COCO id, colour, ADE label, VOC label): four of the synthetic benchmark's classes
OBJECTS = (("banana", 52, (230, 210, 40), 3, 1), ("kite", 38, (200, 40, 40), 7, 2),
           ("orange", 55, (240, 140, 20), 12, 3), ("zebra", 24, (40, 40, 40), 20, 4))
SYNTHETIC_CATEGORIES = (("zebra", 24), ("backpack", 27), ("kite", 38), ("banana", 52), ("orange", 55),
                        ("broccoli", 56), ("pizza", 59), ("toaster", 80), ("vase", 86))
W, H = 160, 128


def _scene(rng: np.random.Generator) -> tuple[Image.Image, list[tuple[int, tuple[int, int, int, int], str]]]:
    """A noisy background with 1-3 objects: (object index, box x0 y0 x1 y1, shape)."""
    pixels = rng.integers(60, 120, size=(H, W, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    objects = []
    for _ in range(int(rng.integers(1, 4))):
        k = int(rng.integers(len(OBJECTS)))
        w, h = int(rng.integers(36, 70)), int(rng.integers(36, 70))
        x0, y0 = int(rng.integers(0, W - w)), int(rng.integers(0, H - h))
        box = (x0, y0, x0 + w, y0 + h)
        shape = "ellipse" if k % 2 else "rect"
        (draw.ellipse if shape == "ellipse" else draw.rectangle)(box, fill=OBJECTS[k][2])
        objects.append((k, box, shape))
    return image, objects


def _mask(objects, value_of) -> Image.Image:
    mask = Image.new("L", (W, H), 0)
    draw = ImageDraw.Draw(mask)
    for k, box, shape in objects:
        (draw.ellipse if shape == "ellipse" else draw.rectangle)(box, fill=value_of(k))
    return mask


def _polygon(box, shape) -> list[float]:
    x0, y0, x1, y1 = box
    if shape == "rect":
        return [x0, y0, x1, y0, x1, y1, x0, y1]
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    return [float(v) for p in zip(cx + rx * np.cos(t), cy + ry * np.sin(t)) for v in p]


def write_coco(root: Path, rng: np.random.Generator, counts=(("train2017", 12), ("val2017", 6))) -> None:
    coco = root / "coco"
    (coco / "annotations").mkdir(parents=True)
    ann_id = 1
    for split, n in counts:
        (coco / split).mkdir()
        images, anns = [], []
        for i in range(n):
            image_id = 1000 * (split == "val2017") + i + 1
            image, objects = _scene(rng)
            name = f"{image_id:012d}.jpg"
            image.save(coco / split / name, quality=95)
            images.append({"id": image_id, "file_name": name, "width": W, "height": H})
            for k, box, shape in objects:
                x0, y0, x1, y1 = box
                area = (x1 - x0) * (y1 - y0) * (np.pi / 4 if shape == "ellipse" else 1.0)
                anns.append({"id": ann_id, "image_id": image_id, "category_id": OBJECTS[k][1],
                             "segmentation": [_polygon(box, shape)], "area": float(area),
                             "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0})
                ann_id += 1
        cats = [{"id": cid, "name": name, "supercategory": "object"} for name, cid in SYNTHETIC_CATEGORIES]
        (coco / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats}))


def write_voc_det(root: Path, rng: np.random.Generator) -> None:
    for year, splits in (("VOC2007", (("trainval", 8), ("test", 6))), ("VOC2012", (("trainval", 8),))):
        base = root / "VOCdevkit" / year
        for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        for split, n in splits:
            ids = [f"{year[-4:]}_{split}_{i:04d}" for i in range(n)]
            for image_id in ids:
                image, objects = _scene(rng)
                image.save(base / "JPEGImages" / f"{image_id}.jpg", quality=95)
                objs = "".join(
                    f"<object><name>{OBJECTS[k][0]}</name><pose>Unspecified</pose><truncated>0</truncated>"
                    f"<difficult>0</difficult><bndbox><xmin>{b[0] + 1}</xmin><ymin>{b[1] + 1}</ymin>"
                    f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for k, b, _ in objects)
                (base / "Annotations" / f"{image_id}.xml").write_text(
                    f"<annotation><folder>{year}</folder><filename>{image_id}.jpg</filename><size>"
                    f"<width>{W}</width><height>{H}</height><depth>3</depth></size>{objs}</annotation>")
            (base / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")


def write_ade(root: Path, rng: np.random.Generator) -> None:
    base = root / "ade" / "ADEChallengeData2016"
    for split, prefix, n in (("training", "ADE_train", 8), ("validation", "ADE_val", 4)):
        (base / "images" / split).mkdir(parents=True)
        (base / "annotations" / split).mkdir(parents=True)
        for i in range(n):
            image, objects = _scene(rng)
            image.save(base / "images" / split / f"{prefix}_{i + 1:08d}.jpg", quality=95)
            # background is ADE "wall" (1); 0 ("other") on a 2-pixel frame is ignored
            label = _mask(objects, lambda k: OBJECTS[k][3])
            arr = np.array(label)
            arr[arr == 0] = 1
            arr[:2, :] = 0
            Image.fromarray(arr).save(base / "annotations" / split / f"{prefix}_{i + 1:08d}.png")


def write_voc_seg(root: Path, rng: np.random.Generator) -> None:
    base = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for split, folder, n in (("train", "SegmentationClass", 6), ("aug", "SegmentationClassAug", 6),
                             ("val", "SegmentationClass", 4)):
        ids = [f"2012_seg{split}_{i:04d}" for i in range(n)]
        for image_id in ids:
            image, objects = _scene(rng)
            image.save(base / "JPEGImages" / f"{image_id}.jpg", quality=95)
            label = np.array(_mask(objects, lambda k: OBJECTS[k][4]))
            label[-2:, :] = 255
            if folder == "SegmentationClass":
                out = Image.fromarray(label, mode="P")
                out.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)])
            else:
                out = Image.fromarray(label)
            out.save(base / folder / f"{image_id}.png")
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")


def write_dense_root(root: Path, seed: int = 0) -> Path:
    """COCO, VOC detection, ADE20K and VOC segmentation sets in the official layouts."""
    rng = np.random.default_rng(seed)
    write_coco(root, rng)
    write_voc_det(root, rng)
    write_ade(root, rng)
    write_voc_seg(root, rng)
    return root


@pytest.fixture(scope="session")
def dense_root(tmp_path_factory) -> Path:
    return write_dense_root(tmp_path_factory.mktemp("dense_data"))


def make_backbone(path: Path, arch: str = "resnet18", seed: int = 0) -> Path:
    """A torchvision ResNet state dict without fc (what a method exports)."""
    import torchvision

    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)()
    torch.save({k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}, path)
    return path


@pytest.fixture(scope="session")
def backbone_r18(tmp_path_factory) -> Path:
    return make_backbone(tmp_path_factory.mktemp("backbone") / "backbone.pth")


def tiny_preset(task: str, preset: str = "tiny") -> dict:
    catalog = yaml.safe_load((REPO / "benchmarks" / "tasks" / f"{task}.yaml").read_text())
    return dict(catalog["presets"][preset])


def make_ctx(task: str, workdir: Path, data_root: Path, backbone: Path, preset: str = "tiny",
             progress=None, **overrides) -> TaskContext:
    cfg = tiny_preset(task, preset)
    cfg.update(overrides)
    kwargs = {"progress": progress} if progress is not None else {}
    return TaskContext(name=task, cfg=cfg, workdir=workdir, data_root=data_root, seed=0, device="cpu",
                       preset=preset, task=task, backbone=backbone, **kwargs)


@pytest.fixture
def mm_ctx():
    """``mm_ctx(task, workdir, data_root, backbone, preset="tiny", **overrides)``."""
    return make_ctx


@pytest.fixture
def backbone_factory():
    """``backbone_factory(path, arch="resnet18", seed=0)`` writes a backbone file."""
    return make_backbone
