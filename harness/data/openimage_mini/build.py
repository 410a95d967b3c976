"""Build OpenImage-MINI from an Open Images root, resumably.

Output layout (``--out``)::

    images/{train,val}/<ImageID>.jpg          symlinks to the Open Images images
    annotations/instances_{train,val}.json    COCO format: boxes, RLE masks, categories 1..C
    seg/{train,val}/<ImageID>.png             semantic labels: 0 background, 1..C, 255 ignore
    crops/{train,val}/<class name>/<ImageID>_<n>.jpg   object crops (COCO-Crop style)
    classes.json                              [{id, mid, name}]
    manifest.json                             spec + hash, input CSV sha256, selected ImageIDs, counts

Instances come from the box CSV (valid boxes of the selected classes). A box gets the RLE
of the segmentation mask of the same class whose box matches it best (IoU >= 0.5); the
mask PNG is resized (nearest) to the image when their sizes differ. A box with no mask
becomes ``iscrowd=1`` (an ignore region for COCO evaluation and training) and 255 in the
semantic map. Per-image results are cached in ``.work/`` so a killed build resumes; a
build into a folder that holds another build (another spec, or changed input CSVs) first
removes that build's outputs.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.fileio import MalformedDataError, MissingDataError
from harness.data.openimage_mini import select
from harness.data.openimage_mini.spec import load_spec, spec_hash
from harness.data.openimages import BOX_FILES, CLASS_FILES, SEGMENTATION_FILES, parse_class_descriptions
from harness.core.hashing import sha256_file
from harness.core.atomic import atomic_write_text

BUILDING = ".building"  # the identity of the build in progress in an output folder
OUTPUT_DIRS = ("images", "annotations", "seg", "crops", ".work")
SEG_NEEDED = ("MaskPath", "ImageID", "LabelName", "BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax")


def _find(root: Path, names: tuple[str, ...], what: str) -> Path:
    for n in names:
        if (root / n).is_file():
            return root / n
    raise MissingDataError(root / names[0], f"missing ({what}; also looked for {list(names[1:])})")


def annotation_pass(oi_root: Path, spec: dict[str, Any]) -> tuple[list[str], dict[str, select.SplitSelection]]:
    """Choose classes (on the train split) and the images of every split."""
    masked = None
    if spec["classes"].get("require_masks", True):
        masked = select.mask_labels(_find(oi_root, SEGMENTATION_FILES["train"], "train segmentation CSV"))
    sources = {s["source"] for s in spec["splits"].values()}
    rows = {src: select.stream_boxes(_find(oi_root, BOX_FILES[src], f"{src} box CSV"), spec,
                                     masked if src == "train" else None) for src in sorted(sources)}
    if "train" not in rows:
        rows["train"] = select.stream_boxes(_find(oi_root, BOX_FILES["train"], "train box CSV"), spec, masked)
    classes = select.choose_classes(rows["train"], spec, masked)
    if len(classes) < 2:
        raise MalformedDataError(_find(oi_root, BOX_FILES["train"], "train box CSV"),
                                 f"only {len(classes)} classes satisfy the spec's class selection")
    out = {name: select.select_images(rows[s["source"]], classes, spec, int(s["size"]), int(s.get("per_class_cap", 0)))
           for name, s in spec["splits"].items()}
    return classes, out


def _mask_index(oi_root: Path, split: str, ids: set[str], classes: set[str]) -> dict[str, list[dict[str, Any]]]:
    import csv

    path = _find(oi_root, SEGMENTATION_FILES[split], f"{split} segmentation CSV")
    select.check_header(path, SEG_NEEDED)
    out: dict[str, list[dict[str, Any]]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["ImageID"] in ids and row["LabelName"] in classes:
                out.setdefault(row["ImageID"], []).append(
                    {"path": row["MaskPath"], "label": row["LabelName"],
                     "box": [float(row[k]) for k in ("BoxXMin", "BoxYMin", "BoxXMax", "BoxYMax")]})
    return out


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def process_image(job: dict[str, Any]) -> dict[str, Any]:
    """One image: its COCO annotations (cached as JSON), semantic PNG, crops."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    cache = Path(job["cache"])
    if cache.is_file():
        return json.loads(cache.read_text())
    img_path = Path(job["image"])
    if not img_path.is_file():
        raise MissingDataError(img_path, "missing (an image of the selected OpenImage-MINI subset)")
    with Image.open(img_path) as im:
        image = im.convert("RGB")
    W, H = image.size
    sem = np.zeros((H, W), np.uint8)
    anns, used = [], set()
    painted: list[tuple[float, np.ndarray, int]] = []
    for k, (cls_idx, box) in enumerate(job["boxes"]):
        mid = job["classes"][cls_idx - 1]
        best, best_iou = None, 0.5
        for j, m in enumerate(job["masks"]):
            if j not in used and m["label"] == mid and (iou := _iou(box, m["box"])) >= best_iou:
                best, best_iou = j, iou
        x0, y0, x1, y1 = box[0] * W, box[1] * H, box[2] * W, box[3] * H
        bbox = [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]
        if best is not None:
            used.add(best)
            mpath = Path(job["mask_dir"]) / job["masks"][best]["path"]
            if not mpath.is_file():
                raise MissingDataError(mpath, "missing (mask PNG listed in the segmentation CSV)")
            with Image.open(mpath) as mim:
                mim = mim.convert("L")
                if mim.size != (W, H):
                    mim = mim.resize((W, H), Image.NEAREST)
                binary = np.asarray(mim) > 0
            painted.append((float(binary.sum()), binary, cls_idx))
            iscrowd = 0
        else:
            binary = np.zeros((H, W), bool)
            binary[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))] = True
            iscrowd = 1
        rle = mask_utils.encode(np.asfortranarray(binary.astype(np.uint8)))
        anns.append({"bbox": bbox, "category_id": cls_idx, "iscrowd": iscrowd,
                     "area": float(mask_utils.area(rle)) if not iscrowd else bbox[2] * bbox[3],
                     "segmentation": {"size": [H, W], "counts": rle["counts"].decode()}})
        if iscrowd:
            sem[binary] = 255
    for _, binary, cls_idx in sorted(painted, key=lambda t: -t[0]):  # small objects painted last, on top
        sem[binary] = cls_idx
    Path(job["seg"]).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sem, mode="L").save(job["seg"], optimize=False)
    for n, a in enumerate(anns):
        x, y, w, h = a["bbox"]
        if a["iscrowd"] or w * h < job["crop_min_area"] * W * H:
            continue
        m = job["crop_margin"]
        cx0, cy0 = max(0, int(x - m * w)), max(0, int(y - m * h))
        cx1, cy1 = min(W, int(np.ceil(x + w + m * w))), min(H, int(np.ceil(y + h + m * h)))
        crop = image.crop((cx0, cy0, cx1, cy1))
        s = job["crop_short_side"] / min(crop.size)
        crop = crop.resize((max(1, round(crop.size[0] * s)), max(1, round(crop.size[1] * s))), Image.BICUBIC)
        dst = Path(job["crop_dir"]) / job["class_names"][a["category_id"] - 1] / f"{job['image_id']}_{n}.jpg"
        dst.parent.mkdir(parents=True, exist_ok=True)
        crop.save(dst, quality=job["jpeg_quality"])
    link = Path(job["link"])
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(img_path.resolve())
    result = {"image_id": job["image_id"], "width": W, "height": H, "annotations": anns}
    atomic_write_text(cache, json.dumps(result))
    return result


def _input_csvs(oi_root: Path, spec: dict[str, Any]) -> list[Path]:
    """Every CSV the build reads: box and segmentation files of each source split, class names."""
    found = []
    for split in sorted({s["source"] for s in spec["splits"].values()} | {"train"}):
        for files in (BOX_FILES[split], SEGMENTATION_FILES[split]):
            found.append(_find(oi_root, files, f"{split} CSV"))
    return found + [_find(oi_root, CLASS_FILES, "class descriptions")]


def build_identity(oi_root: Path, spec: dict[str, Any]) -> str:
    """What a finished build in a folder must match: the spec hash and each input CSV's
    name, size and modification time (cheap; the manifest holds their sha256)."""
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in _input_csvs(oi_root, spec)]
    return hashlib.sha256(json.dumps([spec_hash(spec), stats]).encode()).hexdigest()


def _clear_other_build(out: Path, identity: str) -> None:
    """Remove the outputs of a different (older spec or inputs) build from ``out``, so that
    no stale crop, link or label map survives; a partial build of ``identity`` is kept to resume."""
    import shutil

    marker = out / BUILDING
    previous = marker.read_text().strip() if marker.is_file() else None
    manifest = out / "manifest.json"
    if previous is None and manifest.is_file():
        previous = json.loads(manifest.read_text()).get("build_identity", "unknown")
    if previous is not None and previous != identity:
        for name in OUTPUT_DIRS:
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("classes.json", "manifest.json"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, identity + "\n")


def build(oi_root: Path, out: Path, spec_path: Path, workers: int | None = None,
          report: Any = print) -> Path:
    """Build (or finish building) OpenImage-MINI into ``out``; returns the manifest path."""
    spec = load_spec(spec_path)
    digest = spec_hash(spec)
    oi_root = Path(oi_root)
    identity = build_identity(oi_root, spec)
    manifest_path = out / "manifest.json"
    if manifest_path.is_file() and json.loads(manifest_path.read_text()).get("build_identity") == identity:
        report(f"OpenImage-MINI already built in {out} (spec {digest[:12]})")
        return manifest_path
    _clear_other_build(out, identity)
    work = out / ".work" / identity[:16]
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    classes, splits = annotation_pass(oi_root, spec)
    report(f"annotation pass: {len(classes)} classes, "
           + ", ".join(f"{k} {len(v.image_ids)} images" for k, v in splits.items())
           + f" ({time.monotonic() - t0:.1f} s)")
    names = parse_class_descriptions(_find(oi_root, CLASS_FILES, "class descriptions CSV"))
    class_names = [names.get(m, m).replace("/", "_") for m in classes]
    atomic_write_text(out / "classes.json", json.dumps(
        [{"id": i + 1, "mid": m, "name": n} for i, (m, n) in enumerate(zip(classes, class_names))], indent=1))
    counts: dict[str, Any] = {}
    for name in splits:
        for cname in class_names:  # every class folder exists in every split, empty or not
            (out / "crops" / name / cname).mkdir(parents=True, exist_ok=True)
    for name, sel in splits.items():
        source = spec["splits"][name]["source"]
        ids = set(sel.image_ids)
        masks = _mask_index(oi_root, source, ids, set(classes))
        per_image: dict[str, list] = {}
        for img, c, b in zip(sel.rows.image, sel.rows.cls, sel.rows.box):
            per_image.setdefault(select.u64_to_image_id(img), []).append(
                [classes.index(sel.rows.labels[c]) + 1, [float(v) for v in b]])
        jobs = [{"image_id": i, "image": str(oi_root / source / f"{i}.jpg"), "boxes": per_image.get(i, []),
                 "masks": masks.get(i, []), "mask_dir": str(oi_root / "masks" / source), "classes": classes,
                 "class_names": class_names, "cache": str(work / name / f"{i}.json"),
                 "seg": str(out / "seg" / name / f"{i}.png"), "crop_dir": str(out / "crops" / name),
                 "link": str(out / "images" / name / f"{i}.jpg"), **{k: spec["outputs"][k] for k in
                 ("crop_short_side", "crop_margin", "crop_min_area", "jpeg_quality")}} for i in sel.image_ids]
        (work / name).mkdir(parents=True, exist_ok=True)
        t1 = time.monotonic()
        n_workers = workers or max(1, (os.cpu_count() or 1))
        if n_workers > 1:
            with mp.get_context("fork").Pool(n_workers) as pool:
                results = pool.map(process_image, jobs, chunksize=8)
        else:
            results = [process_image(j) for j in jobs]
        dt = time.monotonic() - t1
        report(f"{name}: {len(results)} images processed ({len(results) / max(dt, 1e-9):.1f} images/s)")
        coco = {"info": {"description": f"{spec['name']} {name} (spec {digest[:12]})"},
                "images": [], "annotations": [], "categories": [
                    {"id": i + 1, "name": n, "supercategory": "object", "mid": m}
                    for i, (m, n) in enumerate(zip(classes, class_names))]}
        ann_id = 1
        for k, r in enumerate(results, 1):
            coco["images"].append({"id": k, "file_name": f"{r['image_id']}.jpg", "width": r["width"],
                                   "height": r["height"], "oi_image_id": r["image_id"]})
            for a in r["annotations"]:
                coco["annotations"].append({**a, "id": ann_id, "image_id": k})
                ann_id += 1
        atomic_write_text(out / "annotations" / f"instances_{name}.json", json.dumps(coco))
        counts[name] = {"images": len(results), "instances": ann_id - 1,
                        "crowd_regions": sum(a["iscrowd"] for a in coco["annotations"])}
    inputs = {p.name: sha256_file(p) for p in _input_csvs(oi_root, spec)}
    manifest = {"spec_hash": digest, "spec": spec, "inputs_sha256": inputs, "classes": classes,
                "selected": {k: v.image_ids for k, v in splits.items()}, "counts": counts,
                "build_identity": identity}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1, sort_keys=True))
    (out / BUILDING).unlink(missing_ok=True)
    report(f"OpenImage-MINI built in {out} ({time.monotonic() - t0:.1f} s): {counts}")
    return manifest_path
