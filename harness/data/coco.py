"""Reader of COCO 2017 instance annotations (``coco/annotations/instances_<split>2017.json``)."""
from __future__ import annotations

from numbers import Real
from pathlib import Path
from typing import Any

from harness.data import layout
from harness.data.fileio import MalformedDataError, read_json, require_dir, require_listed_files
from harness.data.image_sets import DetectionImage, DetectionSet, ObjectAnnotation

SPLITS = {"train": "train2017", "val": "val2017", "train2017": "train2017", "val2017": "val2017"}


def coco_split(split: str) -> str:
    """Canonical COCO 2017 split folder name ("train2017"/"val2017") of ``split``."""
    if split not in SPLITS:
        raise ValueError(f"unknown COCO split {split!r}; expected one of {sorted(SPLITS)}")
    return SPLITS[split]


def read_coco(data_root: Path, split: str) -> DetectionSet:
    """Read COCO 2017 ``split`` ("train"/"val", or "train2017"/"val2017") under ``data_root/coco``.

    Reads ``annotations/instances_<split>.json`` and checks it fully: the top-level keys,
    every image (id, file_name, width, height), category (id, name) and annotation (id,
    image_id and category_id that exist, 4-number bbox with w, h >= 0, iscrowd 0/1, area,
    polygon list or RLE dict segmentation), and that every image file exists in
    ``<split>/``. Category ids are kept as in the file (1..90, non-contiguous). Images
    without annotations are kept with an empty object list. Image decoding is not checked
    here (``harness data verify`` samples it).
    """
    split = coco_split(split)
    root = Path(data_root) / layout.COCO
    ann_file = root / "annotations" / f"instances_{split}.json"
    image_dir = root / split
    data = read_json(ann_file, "COCO instances annotations (images, annotations, categories)")
    require_dir(image_dir, f"COCO {split} images folder")
    return parse_coco_instances(data, ann_file, image_dir, name=f"coco_{split}", root=root)


def parse_coco_instances(data: Any, ann_file: Path, image_dir: Path, name: str, root: Path) -> DetectionSet:
    """Validate an already-parsed COCO instances dict and build a ``DetectionSet``."""
    if not isinstance(data, dict):
        raise MalformedDataError(ann_file, f"top level is {type(data).__name__}; expected a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise MalformedDataError(ann_file, f"key {key!r} missing or not a list; expected COCO instances format")

    categories = []
    cat_ids: set[int] = set()
    for i, cat in enumerate(data["categories"]):
        where = f"categories[{i}]"
        _require_keys(cat, ("id", "name"), ann_file, where)
        cid = _int(cat["id"], ann_file, f"{where}.id")
        if cid in cat_ids:
            raise MalformedDataError(ann_file, f"{where}: duplicate category id {cid}")
        cat_ids.add(cid)
        entry = {"id": cid, "name": str(cat["name"])}
        if "supercategory" in cat:
            entry["supercategory"] = cat["supercategory"]
        categories.append(entry)

    images: dict[int, dict[str, Any]] = {}
    for i, img in enumerate(data["images"]):
        where = f"images[{i}]"
        _require_keys(img, ("id", "file_name", "width", "height"), ann_file, where)
        iid = _int(img["id"], ann_file, f"{where}.id")
        if iid in images:
            raise MalformedDataError(ann_file, f"{where}: duplicate image id {iid}")
        width, height = _int(img["width"], ann_file, f"{where}.width"), _int(img["height"], ann_file, f"{where}.height")
        if width <= 0 or height <= 0:
            raise MalformedDataError(ann_file, f"{where}: width/height {width}x{height}; expected positive")
        images[iid] = {"file_name": str(img["file_name"]), "width": width, "height": height, "objects": []}

    ann_ids: set[int] = set()
    for i, ann in enumerate(data["annotations"]):
        where = f"annotations[{i}]"
        _require_keys(ann, ("id", "image_id", "category_id", "bbox", "iscrowd", "area", "segmentation"),
                      ann_file, where)
        aid = _int(ann["id"], ann_file, f"{where}.id")
        if aid in ann_ids:
            raise MalformedDataError(ann_file, f"{where}: duplicate annotation id {aid}")
        ann_ids.add(aid)
        where = f"annotations[{i}] (id {aid})"
        iid = _int(ann["image_id"], ann_file, f"{where}.image_id")
        if iid not in images:
            raise MalformedDataError(ann_file, f"{where}: image_id {iid} is not in 'images'")
        cid = _int(ann["category_id"], ann_file, f"{where}.category_id")
        if cid not in cat_ids:
            raise MalformedDataError(ann_file, f"{where}: category_id {cid} is not in 'categories'")
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise MalformedDataError(ann_file, f"{where}: bbox {bbox!r}; expected 4 numbers [x, y, w, h]")
        if bbox[2] < 0 or bbox[3] < 0:
            raise MalformedDataError(ann_file, f"{where}: bbox {bbox!r} has negative width/height")
        if ann["iscrowd"] not in (0, 1):
            raise MalformedDataError(ann_file, f"{where}: iscrowd {ann['iscrowd']!r}; expected 0 or 1")
        if not _is_number(ann["area"]):
            raise MalformedDataError(ann_file, f"{where}: area {ann['area']!r}; expected a number")
        _check_segmentation(ann["segmentation"], ann_file, where)
        images[iid]["objects"].append(ObjectAnnotation(
            bbox=tuple(float(v) for v in bbox), category_id=cid, iscrowd=bool(ann["iscrowd"]),
            segmentation=ann["segmentation"], area=float(ann["area"]), extra={"id": aid}))

    entries = [DetectionImage(image_id=iid, path=image_dir / img["file_name"], width=img["width"],
                              height=img["height"], objects=img["objects"]) for iid, img in images.items()]
    require_listed_files([e.path for e in entries], f"the image file named in {ann_file}")
    return DetectionSet(name=name, root=root, categories=categories, images=entries, ann_file=ann_file)


def _check_segmentation(seg: Any, path: Path, where: str) -> None:
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            raise MalformedDataError(path, f"{where}: RLE 'size' {size!r}; expected [height, width]")
        if not isinstance(counts, (str, list)):
            raise MalformedDataError(path, f"{where}: RLE 'counts' is {type(counts).__name__}; expected str or list")
        return
    if not isinstance(seg, list):
        raise MalformedDataError(path, f"{where}: segmentation is {type(seg).__name__}; "
                                       "expected a list of polygons or an RLE dict")
    for k, poly in enumerate(seg):
        if not (isinstance(poly, list) and len(poly) % 2 == 0 and all(_is_number(v) for v in poly)):
            raise MalformedDataError(path, f"{where}: segmentation[{k}]; expected a polygon "
                                           "[x1, y1, x2, y2, ...] with an even number of coordinates")


def _require_keys(obj: Any, keys: tuple[str, ...], path: Path, where: str) -> None:
    if not isinstance(obj, dict):
        raise MalformedDataError(path, f"{where} is {type(obj).__name__}; expected an object")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise MalformedDataError(path, f"{where}: missing keys {missing}")


def _is_number(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def _int(v: Any, path: Path, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise MalformedDataError(path, f"{where}: {v!r}; expected an integer")
    return v
