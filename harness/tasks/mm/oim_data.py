"""Cheap checks of an OpenImage-MINI build before a dense task builds its model.

``check_oim_instances`` (Mask R-CNN) and ``check_oim_semantic`` (FCN) first get a build
for the data root (:func:`harness.data.openimage_mini.ensure.ensure`: the folder
``<data_root>/openimage_mini`` or one built once from ``<data_root>/openimages`` with the
preset's ``spec`` file), then check its files and return a :class:`DenseDataset` whose
fingerprint is a sha256 over the files the task reads labels from.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from harness.data.fileio import MalformedDataError, MissingDataError, file_names, require_dir
from harness.data.openimage_mini import readers
from harness.data.openimage_mini.ensure import ensure
from harness.tasks.mm.datasets import DenseDataset

BACKGROUND = "background"


def _fingerprint(name: str, root: Path, files: list[Path]) -> str:
    h = hashlib.sha256(name.encode())
    for path in files:
        h.update(f"{path.relative_to(root)}\n".encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _extra(root: Path) -> dict[str, object]:
    manifest = readers.read_manifest(root)
    return {"spec_name": (manifest.get("spec") or {}).get("name"), "spec_hash": manifest["spec_hash"]}


def check_oim_instances(data_root: Path, spec_file: str | None = None) -> DenseDataset:
    """Both COCO-format files parse, list images and annotations, have exactly the
    categories of ``classes.json`` (ids 1..C), and every listed image exists."""
    root = ensure(Path(data_root), spec_file)
    classes = readers.read_classes(root)
    expected = [(i, name) for i, name in enumerate(classes, start=1)]
    sizes: dict[str, int] = {}
    files = [root / readers.CLASSES_FILE]
    for split in readers.SPLITS:
        ann = readers.instances_file(root, split)
        if not ann.is_file():
            raise MissingDataError(ann, f"missing; expected the COCO-format {split} annotations of OpenImage-MINI")
        try:
            data = json.loads(ann.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedDataError(ann, f"invalid JSON ({exc})") from exc
        for key in ("images", "annotations", "categories"):
            if not isinstance(data.get(key), list) or not data[key]:
                raise MalformedDataError(ann, f"expected a non-empty list under {key!r}")
        try:
            cats = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
            listed = [str(im["file_name"]) for im in data["images"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedDataError(ann, f"every category needs an id and a name, every image a file_name ({exc!r})"
                                     ) from exc
        if cats != expected:
            raise MalformedDataError(ann, f"categories {cats} differ from {readers.CLASSES_FILE} {expected}")
        folder = require_dir(readers.image_dir(root, split), f"the OpenImage-MINI {split} images")
        present = file_names(folder)
        missing = [name for name in listed if name not in present]
        if missing:
            raise MissingDataError(folder / missing[0], f"image listed in {ann.name} is missing "
                                                        f"({len(missing)} missing in all)")
        sizes[split] = len(data["images"])
        files.append(ann)
    return DenseDataset(name="OpenImage-MINI instances", root=root, classes=tuple(classes), sizes=sizes,
                        fingerprint=_fingerprint("openimage-mini-instances", root, files), extra=_extra(root))


def check_oim_semantic(data_root: Path, spec_file: str | None = None) -> DenseDataset:
    """Every image of both splits has its semantic map ``seg/<split>/<ImageID>.png``; the
    classes are background (0) and the C classes of ``classes.json`` (255 is ignored)."""
    root = ensure(Path(data_root), spec_file)
    classes = (BACKGROUND, *readers.read_classes(root))
    sizes: dict[str, int] = {}
    files = [root / readers.CLASSES_FILE]
    for split in readers.SPLITS:
        folder = require_dir(readers.image_dir(root, split), f"the OpenImage-MINI {split} images")
        images = sorted(n for n in file_names(folder) if n.endswith(".jpg"))
        if not images:
            raise MissingDataError(folder, "no .jpg images")
        labels = require_dir(readers.seg_dir(root, split), f"the OpenImage-MINI {split} semantic maps")
        present = file_names(labels)
        for name in images:
            png = f"{name[:-len('.jpg')]}.png"
            if png not in present:
                raise MissingDataError(labels / png, f"missing; expected the semantic map of {folder / name}")
            files.append(labels / png)
        sizes[split] = len(images)
    return DenseDataset(name="OpenImage-MINI semantic", root=root, classes=classes, sizes=sizes,
                        fingerprint=_fingerprint("openimage-mini-semantic", root, files), extra=_extra(root))
