"""Reader of SI-Score (synthetic object size / location / rotation test sets)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.data import layout
from harness.data.fileio import MalformedDataError, iter_csv, parse_float, parse_int, require_dir, sub_dirs
from harness.data.folders import images_in
from harness.data.image_sets import ClassificationSet

# Factor name -> folder of the released archives (object_size unpacks to "area").
FACTORS = {"area": "area", "size": "area", "rotation": "rotation", "location": "location20_area02_min0pc",
           "location20_area02_min0pc": "location20_area02_min0pc"}
METADATA_COLUMNS = ("image_id", "x_coord", "y_coord", "area", "rotation")
_FLOAT_COLUMNS = ("x_coord", "y_coord", "area", "rotation")


def read_siscore(data_root: Path, factor: str) -> ClassificationSet:
    """Read ``siscore/<factor>/<class_name>/<image_id>.jpg`` with ``<factor>/metadata.csv``.

    ``factor``: "area" (or "size"), "rotation", "location". Labels index the sorted class
    folders (61 in the release). ``metadata.csv`` needs one row per image with at least
    image_id, x_coord, y_coord, area, rotation; where it has ``foreground_class`` (the
    SI-Score generator writes the index of the class in its sorted class list) that must
    agree with the image's folder (as the index or the class name). The rows, aligned with
    the samples, are in ``metadata``: image_id as int, coordinates/area/rotation as float,
    other columns as strings.
    """
    if factor not in FACTORS:
        raise ValueError(f"unknown SI-Score factor {factor!r}; expected one of {sorted(FACTORS)}")
    root = require_dir(Path(data_root) / layout.SISCORE / FACTORS[factor], "SI-Score <class_name>/<id>.jpg folders")
    classes = sub_dirs(root)
    samples: list[tuple[Path, int]] = []
    image_ids: list[int] = []
    for label, cls in enumerate(classes):
        for path in images_in(root / cls):
            image_ids.append(parse_int(path.stem, path, "file name (an integer image id)"))
            samples.append((path, label))
    if not samples:
        raise MalformedDataError(root, "no images; expected <class_name>/<image_id>.jpg files")

    meta_path = root / "metadata.csv"
    rows: dict[int, dict[str, Any]] = {}
    for row in iter_csv(meta_path, "SI-Score image metadata", METADATA_COLUMNS):
        image_id = parse_int(row["image_id"], meta_path, "image_id")
        parsed: dict[str, Any] = dict(row, image_id=image_id)
        for col in _FLOAT_COLUMNS:
            parsed[col] = parse_float(row[col], meta_path, f"image {image_id} {col}")
        rows[image_id] = parsed
    metadata = []
    for (path, label), image_id in zip(samples, image_ids):
        row = rows.pop(image_id, None)
        if row is None:
            raise MalformedDataError(meta_path, f"no row for image_id {image_id}; expected one row per image ({path})")
        fg = row.get("foreground_class")
        if fg is not None and fg != classes[label] and fg != str(label):
            raise MalformedDataError(meta_path, f"image_id {image_id}: foreground_class {fg!r}; expected {label} "
                                                f"({classes[label]}) as its folder {path.parent} says")
        metadata.append(row)
    if rows:
        extra = min(rows)
        raise MalformedDataError(meta_path, f"row for image_id {extra} has no image file; expected "
                                            f"{root / '<class_name>' / f'{extra}.jpg'}")
    return ClassificationSet(name=f"siscore_{FACTORS[factor]}", root=root, classes=classes, samples=samples,
                             metadata=tuple(metadata))
