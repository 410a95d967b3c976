"""OpenImage-MINI construction on a hand-made Open Images root: deterministic and
row-order independent selection, spec-sensitive manifest, mask resizing, group-of
exclusion, clear errors for broken inputs."""
from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data.fileio import MalformedDataError, MissingDataError
from harness.data.openimage_mini import build, select
from harness.data.openimages import BOX_COLUMNS, CLICK_COLUMNS, SEGMENTATION_COLUMNS

TRAIN_COLS = BOX_COLUMNS + CLICK_COLUMNS
MIDS = ["/m/0aaa01", "/m/0aaa02", "/m/0aaa03"]
SPEC = """spec_version: 1
name: test
open_images_version: V6
seed: {seed}
classes: {{mode: auto, require_masks: true, min_instances: 2, max_classes: 3, explicit: []}}
boxes: {{min_area: 0.01}}
image_filter: {{min_objects: 2, min_classes: 2, exclude_group_of: true, exclude_depiction: true}}
splits:
  train: {{source: train, size: {size}, per_class_cap: 0}}
  val: {{source: validation, size: 5, per_class_cap: 0}}
outputs: {{crop_short_side: 32, crop_margin: 0.2, crop_min_area: 0.01, jpeg_quality: 90}}
"""


def image_id(i: int, split: str) -> str:
    return f"{(0xabc000 + i * 7919 + (0 if split == 'train' else 10**9)):016x}"


def write_root(root: Path, n_train: int = 24, shuffle_seed: int | None = None) -> dict[str, list[str]]:
    """Scenes with 2-3 boxes of 2+ classes; image 0 has a group-of box; masks of image 1
    are stored at half resolution."""
    rng = np.random.default_rng(0)
    group_images = []
    for split, n, box_name in (("train", n_train, "oidv6-train-annotations-bbox.csv"),
                               ("validation", 6, "validation-annotations-bbox.csv")):
        (root / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        boxes, segs = [], []
        for i in range(n):
            iid = image_id(i, split)
            Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(root / split / f"{iid}.jpg")
            for k, (x0, y0, x1, y1) in enumerate([(0.05, 0.1, 0.45, 0.6), (0.5, 0.2, 0.95, 0.9), (0.1, 0.6, 0.4, 0.95)]):
                mid = MIDS[(i + k) % 3]
                group = 1 if (split == "train" and i == 0 and k == 2) else 0
                row = [iid, "xclick", mid, "1", x0, x1, y0, y1, 0, 0, group, 0, 0]
                boxes.append(row + ([-1] * 8 if split == "train" else []))
                if group:
                    group_images.append(iid)
                    continue
                w, h = (30, 20) if i == 1 else (60, 40)
                m = np.zeros((h, w), np.uint8)
                m[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)] = 255
                mp = f"{iid}_{mid.replace('/', '')}_{k:08x}.png"
                Image.fromarray(m).save(root / "masks" / split / mp)
                segs.append([mp, iid, mid, f"{k:08x}", x0, x1, y0, y1, "0.9", ""])
        if shuffle_seed is not None:
            random.Random(shuffle_seed).shuffle(boxes)
            random.Random(shuffle_seed).shuffle(segs)
        with open(root / box_name, "w", newline="") as fh:
            csv.writer(fh).writerows([list(TRAIN_COLS if split == "train" else BOX_COLUMNS)] + boxes)
        with open(root / f"{split}-annotations-object-segmentation.csv", "w", newline="") as fh:
            csv.writer(fh).writerows([list(SEGMENTATION_COLUMNS)] + segs)
    (root / "class-descriptions-boxable.csv").write_text("".join(f"{m},Class {j}\n" for j, m in enumerate(MIDS)))
    return {"group": group_images}


def spec_file(tmp: Path, seed: int = 0, size: int = 10) -> Path:
    p = tmp / f"spec-{seed}-{size}.yaml"
    p.write_text(SPEC.format(seed=seed, size=size))
    return p


def run_build(root: Path, out: Path, spec: Path) -> dict:
    build.build(root, out, spec, workers=1, report=lambda *_: None)
    return json.loads((out / "manifest.json").read_text())


def test_selection_independent_of_row_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_root(a)
    write_root(b, shuffle_seed=3)
    spec = spec_file(tmp_path)
    ma, mb = run_build(a, tmp_path / "oa", spec), run_build(b, tmp_path / "ob", spec)
    assert ma["selected"] == mb["selected"] and len(ma["selected"]["train"]) == 10
    ja = json.loads((tmp_path / "oa/annotations/instances_train.json").read_text())
    jb = json.loads((tmp_path / "ob/annotations/instances_train.json").read_text())
    assert ja == jb
    assert ma["inputs_sha256"] != mb["inputs_sha256"]  # the files differ, the subset does not


def test_manifest_follows_the_spec(tmp_path: Path) -> None:
    root = tmp_path / "oi"
    write_root(root)
    m0 = run_build(root, tmp_path / "o0", spec_file(tmp_path, seed=0))
    m1 = run_build(root, tmp_path / "o1", spec_file(tmp_path, seed=1))
    assert m0["spec_hash"] != m1["spec_hash"]
    assert m0["selected"]["train"] != m1["selected"]["train"]  # another seed ranks other images first


def test_group_of_excluded_and_masks_resized(tmp_path: Path) -> None:
    root = tmp_path / "oi"
    info = write_root(root)
    m = run_build(root, tmp_path / "o", spec_file(tmp_path, size=100))
    assert info["group"][0] not in m["selected"]["train"]
    coco = json.loads((tmp_path / "o/annotations/instances_train.json").read_text())
    from pycocotools import mask as mask_utils

    img = next(i for i in coco["images"] if i["oi_image_id"] == image_id(1, "train"))
    anns = [a for a in coco["annotations"] if a["image_id"] == img["id"]]
    assert anns and all(a["segmentation"]["size"] == [40, 60] for a in anns)
    decoded = mask_utils.decode(anns[0]["segmentation"])
    assert decoded.shape == (40, 60) and decoded.sum() == pytest.approx(anns[0]["area"])
    x, y, w, h = anns[0]["bbox"]
    ys, xs = np.nonzero(decoded)
    assert abs(xs.min() - x) <= 2 and abs(ys.min() - y) <= 2  # the half-size mask landed on its box
    sem = np.asarray(Image.open(tmp_path / "o/seg/train" / f"{image_id(1, 'train')}.png"))
    assert sem.shape == (40, 60) and set(np.unique(sem)) <= {0, 1, 2, 3}


def test_rerun_resumes_without_recomputing(tmp_path: Path) -> None:
    root = tmp_path / "oi"
    write_root(root)
    out = tmp_path / "o"
    run_build(root, out, spec_file(tmp_path))
    (out / "manifest.json").unlink()
    cached = sorted((out / ".work").rglob("*.json"))
    mtimes = [p.stat().st_mtime_ns for p in cached]
    run_build(root, out, spec_file(tmp_path))
    assert [p.stat().st_mtime_ns for p in cached] == mtimes


def test_broken_inputs(tmp_path: Path) -> None:
    root = tmp_path / "oi"
    write_root(root)
    spec = spec_file(tmp_path)
    broken = tmp_path / "missing_csv"
    shutil.copytree(root, broken)
    (broken / "validation-annotations-bbox.csv").unlink()
    with pytest.raises(MissingDataError, match="validation-annotations-bbox.csv"):
        run_build(broken, tmp_path / "o1", spec)
    bad_cols = tmp_path / "bad_cols"
    shutil.copytree(root, bad_cols)
    text = (bad_cols / "oidv6-train-annotations-bbox.csv").read_text().replace("IsGroupOf", "IsGroup", 1)
    (bad_cols / "oidv6-train-annotations-bbox.csv").write_text(text)
    with pytest.raises(MalformedDataError, match=r"oidv6-train-annotations-bbox.csv: missing columns \['IsGroupOf'\]"):
        run_build(bad_cols, tmp_path / "o2", spec)
    no_img = tmp_path / "no_img"
    shutil.copytree(root, no_img)
    victim = run_build(root, tmp_path / "o3", spec)["selected"]["train"][0]
    (no_img / "train" / f"{victim}.jpg").unlink()
    with pytest.raises(MissingDataError, match=f"{victim}.jpg"):
        run_build(no_img, tmp_path / "o4", spec)


def test_bad_image_id_and_rank(tmp_path: Path) -> None:
    root = tmp_path / "oi"
    write_root(root)
    csv_path = root / "oidv6-train-annotations-bbox.csv"
    rows = select.stream_boxes(csv_path, None)
    assert select.u64_to_image_id(rows.image[0]) == image_id(0, "train")
    text = csv_path.read_text().splitlines()
    text[3] = text[3].replace(image_id(0, "train")[-4:], "XYZW", 1)
    csv_path.write_text("\n".join(text) + "\n")
    with pytest.raises(MalformedDataError, match="oidv6-train-annotations-bbox.csv: ImageID of box row 3"):
        select.stream_boxes(csv_path, None)
    v = np.array([1, 2, 3], dtype=np.uint64)
    assert (select.rank_key(v, 0) != select.rank_key(v, 1)).all()
