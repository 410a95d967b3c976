"""Cheap checks of an OpenImage-MINI build before a dense task builds its model.

``check_oim_instances`` (Mask R-CNN) and ``check_oim_semantic`` (FCN) first get a build
for the data root (:func:`harness.data.openimage_mini.ensure.ensure`: the folder
``<data_root>/openimage_mini`` or one built once from ``<data_root>/openimages`` with the
preset's ``spec`` file), then check its files and return a :class:`DenseDataset` named
after the build's spec, with a sha256 fingerprint over the files labels are read from.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from harness.data.coco import parse_coco_instances
from harness.data.fileio import MalformedDataError, MissingDataError, file_names, read_json, require_dir
from harness.data.openimage_mini import readers
from harness.data.openimage_mini.ensure import ensure
from harness.api import TaskContext
from harness.tasks.mm.datasets import DenseDataset, fingerprint
from harness.tasks.mm.engine import DenseTask, DenseTaskRunner

BACKGROUND = "background"


def _spec_name(root: Path) -> str:
    """The spec name the build records (e.g. ``OpenImage-MINI-tiny``): it names the dataset."""
    return str((readers.read_manifest(root).get("spec") or {}).get("name") or "OpenImage-MINI")


def check_oim_instances(data_root: Path, spec_file: str | None = None, images: int | None = None) -> DenseDataset:
    """Both COCO-format files valid (the COCO reader's full checks, image files included),
    with images and objects, and exactly the categories of ``classes.json`` (ids 1..C).
    ``images``: a build of that many images per split when one is made (a fast dev run)."""
    root = ensure(Path(data_root), spec_file, images)
    classes = readers.read_classes(root)
    expected = [(i, name) for i, name in enumerate(classes, start=1)]
    sizes: dict[str, int] = {}
    files = [root / readers.CLASSES_FILE]
    for split in readers.SPLITS:
        ann = readers.instances_file(root, split)
        data = read_json(ann, f"the COCO-format {split} annotations of OpenImage-MINI")
        image_dir = require_dir(readers.image_dir(root, split), f"the OpenImage-MINI {split} images")
        ds = parse_coco_instances(data, ann, image_dir, name=f"openimage_mini_{split}", root=root)
        if not ds.images or not any(image.objects for image in ds.images):
            raise MalformedDataError(ann, "expected images with object annotations")
        cats = sorted((int(c["id"]), str(c["name"])) for c in ds.categories)
        if cats != expected:
            raise MalformedDataError(ann, f"categories {cats} differ from {readers.CLASSES_FILE} {expected}")
        sizes[split] = len(ds.images)
        files.append(ann)
    return DenseDataset(name=f"{_spec_name(root)} instances", root=root, classes=tuple(classes), sizes=sizes,
                        fingerprint=fingerprint("openimage-mini-instances", files, root))


def check_oim_semantic(data_root: Path, spec_file: str | None = None, images: int | None = None) -> DenseDataset:
    """Every image of both splits has its semantic map ``seg/<split>/<ImageID>.png``; the
    classes are background (0) and the C classes of ``classes.json`` (255 is ignored)."""
    root = ensure(Path(data_root), spec_file, images)
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
    return DenseDataset(name=f"{_spec_name(root)} semantic", root=root, classes=classes, sizes=sizes,
                        fingerprint=fingerprint("openimage-mini-semantic", files, root))


class OimTaskRunner(DenseTaskRunner):
    """An OpenImage-MINI dense task: its data check reads the build's spec file named in
    the unit's options (``spec``), and builds ``build_images`` images per split when set."""

    def spec_for(self, ctx: TaskContext) -> DenseTask:
        check = functools.partial(self.spec.check_data, spec_file=ctx.cfg.get("spec"),
                                  images=ctx.cfg.get("build_images"))
        return dataclasses.replace(self.spec, check_data=check)

    def preflight(self, ctx: TaskContext) -> list[str]:
        """The dense checks once OpenImage-MINI is built; before that the catalog's reads
        (the Open Images files it is built from) are what can be checked."""
        from harness.data.openimage_mini.ensure import built

        if not built(Path(ctx.data_root), ctx.cfg.get("spec"), ctx.cfg.get("build_images")):
            return ["OpenImage-MINI is built from the Open Images files when the task starts; its annotations "
                    "and config are checked then"]
        return super().preflight(ctx)
