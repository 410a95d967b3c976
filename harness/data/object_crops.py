"""Object-crop classification sets built from box annotations (COCO-Crop and the like).

ContraCAM's COCO-Crop recipe, applied to any :class:`DetectionSet`: every object whose
area (the annotated area, else the box area) is at least ``min_area`` of its image (COCO
crowd regions included, as ContraCAM's crops; ``include_crowd: false`` leaves them out;
Open Images group-of boxes are always left out) is cropped with its box grown by ``margin`` of the box size on
each side (clipped to the image), resized so that its shorter side is ``size`` (bilinear),
and saved as ``<out>/<category name>/<object id>.jpg``. A build is deterministic, runs
in a process pool, and resumes: crops already on disk are skipped, each file is written
atomically, and a ``.complete.json`` marker makes a finished split free.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from harness.core.dev_run import thin
from harness.core import paths
from harness.data import layout
from harness.data.coco import read_coco
from harness.data.image_sets import DetectionSet, ObjectAnnotation
from harness.core.atomic import atomic_open, atomic_write_json
from harness.core.errors import DataError
from harness.core.hashing import sha256_file

MARKER = ".complete.json"
Job = tuple[str, list[tuple[str, tuple[float, float, float, float]]]]


@dataclass(frozen=True)
class CropSpec:
    min_area: float = 0.01  # fraction of the image area
    margin: float = 0.2  # fraction of the box width/height added on each side
    size: int = 256  # shorter side of the saved crop
    quality: int = 75  # JPEG quality (PIL's default, as the published crops)
    include_crowd: bool = True  # COCO iscrowd regions (ContraCAM's crops keep them)

    @classmethod
    def from_cfg(cls, cfg: dict[str, Any]) -> "CropSpec":
        return cls(min_area=float(cfg.get("min_area", 0.01)), margin=float(cfg.get("margin", 0.2)),
                   size=int(cfg.get("size", 256)), quality=int(cfg.get("quality", 75)),
                   include_crowd=bool(cfg.get("include_crowd", True)))


def expand_box(box: tuple[float, float, float, float], width: int, height: int, margin: float
               ) -> tuple[float, float, float, float]:
    """(x, y, w, h) grown by ``margin * w`` / ``margin * h`` per side, clipped: (x0, y0, x1, y1)."""
    x, y, w, h = box
    return (max(0.0, x - w * margin), max(0.0, y - h * margin),
            min(float(width), x + w + w * margin), min(float(height), y + h + h * margin))


def _left_out(obj: ObjectAnnotation, spec: CropSpec) -> bool:
    return (obj.iscrowd and not spec.include_crowd) or obj.extra.get("IsGroupOf") == 1


def crop_jobs(ds: DetectionSet, spec: CropSpec) -> list[Job]:
    """Per image with eligible objects: (image path, [(relative crop path, expanded box)]).

    A crop is named by the object's annotation id, else ``<image id>_<object index>``."""
    names = {c["id"]: c["name"] for c in ds.categories}
    jobs = []
    for img in ds.images:
        min_area = spec.min_area * img.width * img.height
        crops = []
        for k, obj in enumerate(img.objects):
            area = obj.area if obj.area is not None else obj.bbox[2] * obj.bbox[3]
            if _left_out(obj, spec) or area < min_area:
                continue
            x0, y0, x1, y1 = expand_box(obj.bbox, img.width, img.height, spec.margin)
            if round(x1) - round(x0) < 1 or round(y1) - round(y0) < 1:
                continue
            stem = obj.extra.get("id", f"{img.image_id}_{k}")
            crops.append((f"{names[obj.category_id]}/{stem}.jpg", (x0, y0, x1, y1)))
        if crops:
            jobs.append((str(img.path), crops))
    return jobs


def _resize_shorter(im, size: int):
    from PIL import Image

    w, h = im.size
    new = (size, max(1, int(size * h / w))) if w <= h else (max(1, int(size * w / h)), size)
    return im.resize(new, Image.BILINEAR)


def _write_crops(args: tuple[str, list[tuple[str, tuple[float, ...]]], str, int, int]) -> int:
    from PIL import Image

    image_path, crops, out_dir, size, quality = args
    todo = [(rel, box) for rel, box in crops if not os.path.exists(os.path.join(out_dir, rel))]
    if not todo:
        return 0
    try:
        with Image.open(image_path) as im:
            img = im.convert("RGB")
    except OSError as exc:
        raise DataError(f"{image_path}: cannot read image ({exc})") from exc
    for rel, box in todo:
        target = os.path.join(out_dir, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        crop = _resize_shorter(img.crop(tuple(round(v) for v in box)), size)
        with atomic_open(target, fsync=False) as fh:  # many small files, rebuilt when the marker is absent
            crop.save(fh, format="JPEG", quality=quality)
    return len(todo)


def build_crops(ds: DetectionSet, out_dir: Path, spec: CropSpec, workers: int = 1,
                progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the crops of ``ds`` under ``out_dir`` (resuming), then its completion marker."""
    out_dir = Path(out_dir)
    stamp = {"spec": asdict(spec), "annotations": sha256_file(ds.ann_file) if ds.ann_file else ds.name}
    marker = out_dir / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("stamp") == stamp:
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = crop_jobs(ds, spec)
    args = [(path, crops, str(out_dir), spec.size, spec.quality) for path, crops in jobs]
    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            for done, _ in enumerate(pool.imap_unordered(_write_crops, args, chunksize=16), start=1):
                if progress:
                    progress(done, len(args))
    else:
        for done, a in enumerate(args, start=1):
            _write_crops(a)
            if progress:
                progress(done, len(args))
    atomic_write_json(marker, {"stamp": stamp, "crops": sum(len(c) for _, c in jobs)}, indent=1)
    return out_dir


def build_coco_split(data_root: Path, out_root: Path, split: str, spec: CropSpec, workers: int = 1,
                     progress: Callable[[int, int], None] | None = None,
                     dev_run: dict[str, int] | None = None) -> Path:
    """COCO-Crop of one COCO split, written to ``out_root/coco_crop/<split>`` (in a fast dev
    run, of an evenly spaced K of the split's images)."""
    ds = thin(read_coco(data_root, split), "images", dev_run)
    return build_crops(ds, Path(out_root) / layout.COCO_CROP / split, spec, workers, progress)


def image_stamp(folders: list[Path]) -> str:
    """sha256 over (path, size, modification time) of every file in ``folders``: a local
    check that no image changed since the crops were cut (annotations alone do not say)."""
    h = hashlib.sha256()
    for folder in folders:
        if folder.is_dir():
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                st = entry.stat()
                h.update(f"{Path(entry.path).resolve()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cache_root(files: list[Path], spec: CropSpec, base: Path, images: str = "") -> Path:
    """A cache folder under ``base`` keyed by the annotation files' contents, the crop spec
    and the ``images`` stamp (:func:`image_stamp`)."""
    h = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode())
    for path in files:
        if not path.is_file():
            raise DataError(f"{path}: missing; object crops are built from this annotation file")
        h.update(sha256_file(path).encode())
    h.update(images.encode())
    return Path(base) / h.hexdigest()[:16]


def build_coco_crop(data_root: Path, cfg: dict[str, Any], progress: Callable[..., None] | None = None,
                    dev_run: dict[str, int] | None = None) -> Path:
    """Build (or resume) both COCO-Crop splits; returns the root holding ``coco_crop/``
    (a fast dev run's crops of K images per split go to a folder of their own)."""
    spec = CropSpec.from_cfg(cfg.get("crops") or {})
    anns = [Path(data_root) / layout.COCO / "annotations" / f"instances_{s}2017.json" for s in ("train", "val")]
    images = image_stamp([Path(data_root) / layout.COCO / f"{s}2017" for s in ("train", "val")])
    out = Path(cfg["crop_dir"]).expanduser() if cfg.get("crop_dir") else \
        cache_root(anns, spec, paths.cache_dir() / "coco_crop", images)
    if dev_run:
        out = out / f"dev-run-{int(dev_run['images'])}"
    workers = int(cfg.get("build_workers", 1))
    for split in ("train", "val"):
        report = (lambda done, total, s=split: progress(done, total, phase=f"crops {s}")) if progress else None
        build_coco_split(data_root, out, split, spec, workers=workers, progress=report, dev_run=dev_run)
    return out


def coco_crop_root(data_root: Path, cfg: dict[str, Any], progress: Callable[..., None] | None = None,
                   dev_run: dict[str, int] | None = None) -> Path:
    """``data_root`` when it already holds ``coco_crop/``, else the built crops' root."""
    if (Path(data_root) / layout.COCO_CROP / "train").is_dir():
        return Path(data_root)
    return build_coco_crop(data_root, cfg, progress, dev_run)
