"""Single-object classification sets in the CUB-200-2011, Flowers-102, Food-101 and
Oxford-IIIT Pets layouts, with ground-truth masks where the real set has them.

Every set uses the nine classes, one object per image on an unbiased background
(family uniform), with its own random stream. Per class: ``Sizes.cls_per_class``
(train, test) images; Flowers splits its train part into trnid / valid.

- CUB: ``images/NNN.<Class>/<Class>_NNNN.jpg``, images.txt, image_class_labels.txt,
  train_test_split.txt, ReDO's train_val_test_split.txt (the localization split), bounding_boxes.txt (x y w h floats), classes.txt and soft
  (blurred) grey masks ``segmentations/NNN.<Class>/<name>.png``.
- Flowers: ``jpg/image_%05d.jpg``, imagelabels.mat (``labels`` 1xN double, 1-based),
  setid.mat (``trnid``, ``valid``, ``tstid``: 1xn double, 1-based image numbers) and
  ``segmim/segmim_%05d.jpg`` (background painted pure blue, as the real ones).
- Food: ``images/<class>/<id>.jpg``, ``meta/{train,test}.txt`` (``class/id``),
  ``meta/{train,test}.json``, ``meta/classes.txt``, ``meta/labels.txt``.
- Pets: ``images/<Breed>_<n>.jpg`` (capitalised = cat), ``annotations/{trainval,test,list}.txt``
  (``Image CLASS-ID SPECIES BREED-ID``), ``annotations/trimaps/<name>.png`` (1 = pet,
  2 = background, 3 = boundary).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image, ImageFilter

from harness.data import layout
from harness.data.layout import SYNTHETIC_CLASSES

from .backgrounds import FAMILIES
from .common import save_jpeg, save_png, stream, write_json, write_lines
from .plan import Single, render_single
from .sizes import Sizes

SEGMIM_BLUE = (0, 0, 254)
PET_CATS = SYNTHETIC_CLASSES[:4]  # written capitalised (species 1 = cat); the rest are "dogs"


def _items(seed: int, name: str, sz: Sizes):
    """(class index, index within class, is_train, Single) in class-major order."""
    n_train, n_test = sz.cls_per_class
    for k in range(len(SYNTHETIC_CLASSES)):
        for i in range(n_train + n_test):
            rng = stream(seed, name, k, i)
            family = FAMILIES[int(rng.integers(len(FAMILIES)))]
            yield k, i, i < n_train, render_single(rng, k, sz.cls_side, sz.cls_side, family, size=(0.45, 0.85),
                                                   rotation=(-30.0, 30.0), jitter=0.15)


def _savemat(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, data, do_compression=False, oned_as="row")
    raw = bytearray(path.read_bytes())
    raw[:116] = b"MATLAB 5.0 MAT-file, Platform: posix, Created on: Thu Jan  1 00:00:00 1970".ljust(116)
    path.write_bytes(bytes(raw))  # fixed header text: no timestamp in the file


def write_cub(root: Path, seed: int, sz: Sizes) -> dict[str, int]:
    base = root / layout.CUB
    classes = [f"{k + 1:03d}.{c.capitalize()}" for k, c in enumerate(SYNTHETIC_CLASSES)]
    images, labels, split, redo, boxes = [], [], [], [], []
    for n, (k, i, is_train, s) in enumerate(_items(seed, "cub", sz), start=1):
        rel = f"{classes[k]}/{SYNTHETIC_CLASSES[k].capitalize()}_{i + 1:04d}.jpg"
        save_jpeg(s.image, base / "images" / rel)
        soft = Image.fromarray(s.mask.astype(np.uint8) * 255).filter(ImageFilter.BoxBlur(1))
        save_png(soft, base / "segmentations" / rel.replace(".jpg", ".png"))
        x0, y0, x1, y1 = s.box
        images.append(f"{n} {rel}")
        labels.append(f"{n} {k + 1}")
        split.append(f"{n} {int(is_train)}")
        redo.append(f"{n} {(1 if i % 10 == 9 else 0) if is_train else 2}")  # ReDO: 0 train, 1 val, 2 test
        boxes.append(f"{n} {float(x0)} {float(y0)} {float(x1 - x0)} {float(y1 - y0)}")
    write_lines(images, base / "images.txt")
    write_lines(labels, base / "image_class_labels.txt")
    write_lines(split, base / "train_test_split.txt")
    write_lines(redo, base / "train_val_test_split.txt")
    write_lines(boxes, base / "bounding_boxes.txt")
    write_lines([f"{k + 1} {c}" for k, c in enumerate(classes)], base / "classes.txt")
    return {"CUB images": len(images)}


def write_flowers(root: Path, seed: int, sz: Sizes) -> dict[str, int]:
    base = root / layout.FLOWERS
    n_trn = (sz.cls_per_class[0] + 1) // 2
    labels, trn, val, tst = [], [], [], []
    for n, (k, i, is_train, s) in enumerate(_items(seed, "flowers", sz), start=1):
        save_jpeg(s.image, base / "jpg" / f"image_{n:05d}.jpg")
        seg = s.image.copy()
        seg[~s.mask] = SEGMIM_BLUE
        save_jpeg(seg, base / "segmim" / f"segmim_{n:05d}.jpg")
        labels.append(k + 1)
        (trn if is_train and i < n_trn else val if is_train else tst).append(n)
    as_row = lambda v: np.asarray(v, np.float64).reshape(1, -1)  # noqa: E731
    _savemat(base / "imagelabels.mat", {"labels": as_row(labels)})
    _savemat(base / "setid.mat", {"trnid": as_row(trn), "valid": as_row(val), "tstid": as_row(tst)})
    return {"flowers images": len(labels)}


def write_food(root: Path, seed: int, sz: Sizes) -> dict[str, int]:
    base = root / layout.FOOD
    train: dict[str, list[str]] = {c: [] for c in SYNTHETIC_CLASSES}
    test: dict[str, list[str]] = {c: [] for c in SYNTHETIC_CLASSES}
    for k, i, is_train, s in _items(seed, "food", sz):
        c = SYNTHETIC_CLASSES[k]
        image_id = str(100000 + 7919 * (k * 1000 + i) % 900000)
        save_jpeg(s.image, base / "images" / c / f"{image_id}.jpg")
        (train if is_train else test)[c].append(f"{c}/{image_id}")
    for split, d in (("train", train), ("test", test)):
        write_lines([e for c in SYNTHETIC_CLASSES for e in d[c]], base / "meta" / f"{split}.txt")
        write_json(d, base / "meta" / f"{split}.json")
    write_lines(SYNTHETIC_CLASSES, base / "meta" / "classes.txt")
    write_lines([c.replace("_", " ").capitalize() for c in SYNTHETIC_CLASSES], base / "meta" / "labels.txt")
    return {"food images": sum(len(v) for v in train.values()) + sum(len(v) for v in test.values())}


def trimap(s: Single) -> np.ndarray:
    """1 = foreground, 2 = background, 3 = a 1-px band on both sides of the outline."""
    m = s.mask
    p = np.pad(m, 1, mode="edge")
    h, w = m.shape
    edge = np.zeros((h, w), bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= p[dy:dy + h, dx:dx + w] != m
    return np.where(edge, 3, np.where(m, 1, 2)).astype(np.uint8)


def write_pets(root: Path, seed: int, sz: Sizes) -> dict[str, int]:
    base = root / layout.PETS
    breeds = [c.capitalize() if c in PET_CATS else c for c in SYNTHETIC_CLASSES]
    species = [1 if c in PET_CATS else 2 for c in SYNTHETIC_CLASSES]
    breed_id = [sum(1 for j in range(k + 1) if species[j] == species[k]) for k in range(len(breeds))]
    trainval, test = [], []
    for k, i, is_train, s in _items(seed, "pets", sz):
        name = f"{breeds[k]}_{i + 1}"
        save_jpeg(s.image, base / "images" / f"{name}.jpg")
        save_png(trimap(s), base / "annotations" / "trimaps" / f"{name}.png")
        (trainval if is_train else test).append(f"{name} {k + 1} {species[k]} {breed_id[k]}")
    write_lines(trainval, base / "annotations" / "trainval.txt")
    write_lines(test, base / "annotations" / "test.txt")
    n_cat = len(PET_CATS)
    header = ["#Image CLASS-ID SPECIES BREED ID", f"#ID: 1:{len(breeds)} Class ids", "#SPECIES: 1:Cat 2:Dog",
              f"#BREED ID: 1-{n_cat}:Cat 1-{len(breeds) - n_cat}:Dog",
              "#All images with 1st letter as captial are cat images",
              "#images with small first letter are dog images"]
    write_lines(header + sorted(trainval + test), base / "annotations" / "list.txt")
    return {"pets images": len(trainval) + len(test)}
