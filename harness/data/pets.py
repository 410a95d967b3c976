"""Reader of the Oxford-IIIT Pet dataset (annotations/{trainval,test}.txt, images/, trimaps/)."""
from __future__ import annotations

import re
from pathlib import Path

from harness.data import layout
from harness.data.fileio import MalformedDataError, parse_int, read_lines, require_listed_files
from harness.data.image_sets import ClassificationSet, MaskSet

SPLITS = ("trainval", "test")  # 3,680 / 3,669
_BREED = re.compile(r"^(.+)_\d+$")


def pets_dir(data_root: Path) -> Path:
    """``<data_root>/oxford-iiit-pet``."""
    return Path(data_root) / layout.PETS


def read_pets_list(data_root: Path, split: str) -> list[tuple[str, int]]:
    """``annotations/<split>.txt`` rows ``<image> <class id 1..37> <species> <breed id>`` as (image, class id)."""
    if split not in SPLITS:
        raise ValueError(f"unknown Pets split {split!r}; expected one of {SPLITS}")
    path = pets_dir(data_root) / "annotations" / f"{split}.txt"
    rows = []
    for k, line in enumerate(read_lines(path, "<image> <class id> <species> <breed id> lines"), start=1):
        if line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 4:
            raise MalformedDataError(path, f"line {k}: {len(fields)} fields; expected 4 "
                                           "(<image> <class id> <species> <breed id>)")
        class_id = parse_int(fields[1], path, f"line {k} class id")
        species = parse_int(fields[2], path, f"line {k} species")
        if class_id < 1 or species not in (1, 2) or not _BREED.match(fields[0]):
            raise MalformedDataError(path, f"line {k}: {line!r}; expected <Breed_name>_<n> <class id >= 1> "
                                           "<species 1 cat | 2 dog> <breed id>")
        rows.append((fields[0], class_id))
    return rows


def pets_classes(data_root: Path) -> list[str]:
    """Breed names by class id (from the image names of trainval.txt and test.txt); ids must be 1..N."""
    names: dict[int, str] = {}
    for split in SPLITS:
        path = pets_dir(data_root) / "annotations" / f"{split}.txt"
        for image, class_id in read_pets_list(data_root, split):
            breed = _BREED.match(image).group(1)
            if names.setdefault(class_id, breed) != breed:
                raise MalformedDataError(path, f"class id {class_id} is both {names[class_id]!r} and {breed!r}")
    missing = sorted(set(range(1, max(names) + 1)) - names.keys())
    if missing:
        raise MalformedDataError(pets_dir(data_root) / "annotations",
                                 f"class ids {missing} appear in neither trainval.txt nor test.txt")
    return [names[k] for k in range(1, len(names) + 1)]


def read_pets(data_root: Path, split: str) -> ClassificationSet:
    """Read Pets ``split`` ("trainval" / "test"): ``images/<image>.jpg`` with label = class id - 1 (37 breeds)."""
    root = pets_dir(data_root)
    classes = pets_classes(data_root)
    samples = [(root / "images" / f"{image}.jpg", class_id - 1) for image, class_id in read_pets_list(data_root, split)]
    require_listed_files([p for p, _ in samples], f"the image of a line of annotations/{split}.txt")
    return ClassificationSet(name=f"pets_{split}", root=root, classes=classes, samples=samples)


def read_pets_trimaps(data_root: Path, split: str) -> MaskSet:
    """Pets image / ``annotations/trimaps/<image>.png`` pairs of ``split`` (``mask_format="pets_trimap"``)."""
    root = pets_dir(data_root)
    samples = [(root / "images" / f"{image}.jpg", root / "annotations" / "trimaps" / f"{image}.png")
               for image, _ in read_pets_list(data_root, split)]
    require_listed_files([s[0] for s in samples], f"the image of a line of annotations/{split}.txt")
    require_listed_files([s[1] for s in samples], "the trimap of an image (annotations/trimaps/<image>.png)")
    return MaskSet(name=f"pets_trimaps_{split}", root=root, samples=samples, mask_format="pets_trimap")
