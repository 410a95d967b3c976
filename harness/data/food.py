"""Reader of Food-101 (images/<class>/<id>.jpg listed in meta/{train,test}.txt)."""
from __future__ import annotations

from pathlib import Path

from harness.data import layout
from harness.data.fileio import MalformedDataError, read_lines, require_dir, require_listed_files
from harness.data.image_sets import ClassificationSet

SPLITS = ("train", "test")  # 75,750 / 25,250


def read_food(data_root: Path, split: str) -> ClassificationSet:
    """Read Food-101 ``split``: ``meta/<split>.txt`` lines ``<class>/<id>`` -> ``images/<class>/<id>.jpg``.

    Labels index ``meta/classes.txt`` (101 class folder names, one per line); a listed class
    that is not in classes.txt is a ``MalformedDataError``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown Food-101 split {split!r}; expected one of {SPLITS}")
    root = Path(data_root) / layout.FOOD
    classes = read_lines(root / "meta" / "classes.txt", "one Food-101 class folder name per line")
    index = {c: i for i, c in enumerate(classes)}
    list_file = root / "meta" / f"{split}.txt"
    image_dir = require_dir(root / "images", "Food-101 images/<class>/<id>.jpg")
    samples = []
    for k, entry in enumerate(read_lines(list_file, "<class>/<image id> lines"), start=1):
        cls, sep, _ = entry.partition("/")
        if not sep or cls not in index:
            raise MalformedDataError(list_file, f"line {k}: {entry!r}; expected <class>/<id> with a class of "
                                                "meta/classes.txt")
        samples.append((image_dir / f"{entry}.jpg", index[cls]))
    require_listed_files([p for p, _ in samples], f"the image of an entry of {list_file}")
    return ClassificationSet(name=f"food101_{split}", root=root, classes=classes, samples=samples)
