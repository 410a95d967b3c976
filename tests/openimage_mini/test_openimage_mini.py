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
from harness.data.openimage_mini.capwalk import capped_walk
from harness.data.openimage_mini.rankkey import rank_key, rank_key_expr, unrank_key
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
    with pytest.raises(MissingDataError, match=f"{victim}.jpg"):  # raised in a worker, it crosses the pool
        build.build(no_img, tmp_path / "o4", spec, workers=2, report=lambda *_: None)
    assert not (tmp_path / "o4" / "manifest.json").exists()


def test_bad_image_id_and_rank(tmp_path: Path) -> None:
    root = tmp_path / "oi"
    write_root(root)
    csv_path = root / "oidv6-train-annotations-bbox.csv"
    spec = {"seed": 0, "boxes": {"min_area": 0.01}, "image_filter": {"min_objects": 2, "min_classes": 2}}
    table = select.stream_boxes(csv_path, spec)
    images = unrank_key(table.groups.image_rank, 0)
    assert sorted(select.u64_to_image_id(v) for v in images) == sorted(image_id(i, "train") for i in range(24))
    text = csv_path.read_text().splitlines()
    text[3] = text[3].replace(image_id(0, "train")[-4:], "XYZW", 1)
    csv_path.write_text("\n".join(text) + "\n")
    with pytest.raises(MalformedDataError, match="oidv6-train-annotations-bbox.csv: ImageID of box row 3"):
        select.stream_boxes(csv_path, spec)
    text[3] = text[3].replace("XYZW", image_id(0, "train")[-4:], 1).replace(MIDS[2], "", 1)
    csv_path.write_text("\n".join(text) + "\n")
    with pytest.raises(MalformedDataError, match="LabelName of box row 3 is empty"):
        select.stream_boxes(csv_path, spec)
    v = np.array([1, 2, 3], dtype=np.uint64)
    assert (rank_key(v, 0) != rank_key(v, 1)).all()


def test_rank_key_inverse_and_polars_expression() -> None:
    import polars as pl

    v = np.random.default_rng(1).integers(0, 2**64 - 1, 1000, dtype=np.uint64, endpoint=True)
    for seed in (0, 7, 2**40 + 3):
        keys = rank_key(v, seed)
        assert np.array_equal(unrank_key(keys, seed), v)
        expr = pl.DataFrame({"x": v}).select(rank_key_expr(pl.col("x"), seed))["x"].to_numpy()
        assert np.array_equal(expr, keys)


def sequential_walk(lists: list[list[int]], size: int, cap: int) -> list[int]:
    counts: dict[int, int] = {}
    taken = []
    for i, cls in enumerate(lists):
        if len(taken) >= size:
            break
        if cap and any(counts.get(c, 0) >= cap for c in cls):
            continue
        for c in cls:
            counts[c] = counts.get(c, 0) + 1
        taken.append(i)
    return taken


def test_capped_walk_matches_the_sequential_walk() -> None:
    rng = np.random.default_rng(0)
    for trial in range(40):
        n_classes = int(rng.integers(1, 12))
        lists = [sorted(set(rng.integers(0, n_classes, int(rng.integers(0, 5))).tolist())) for _ in range(300)]
        indptr = np.r_[0, np.cumsum([len(c) for c in lists])]
        classes = np.array([c for cls in lists for c in cls], dtype=np.int64)
        size, cap = int(rng.integers(1, 400)), int(rng.integers(0, 30))
        got = capped_walk(indptr, classes, n_classes, size, cap, window=int(rng.integers(1, 64)))
        assert got.tolist() == sequential_walk(lists, size, cap), trial


def write_random_boxes(path: Path, rows: list[list], header: tuple[str, ...] = TRAIN_COLS) -> None:
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([list(header)] + rows)


def random_box_rows(n: int, seed: int) -> list[list]:
    rng = np.random.default_rng(seed)
    mids = [f"/m/0{k:05x}" for k in range(9)]
    images = [f"{v:016x}" for v in rng.integers(0, 2**63, 120, dtype=np.uint64) * np.uint64(2) + np.uint64(1)]
    out = []
    for _ in range(n):
        x0, y0 = rng.random(2) * 0.7
        x1, y1 = x0 + rng.random() * 0.3, y0 + rng.random() * 0.3
        out.append([images[int(rng.integers(0, len(images)))], "xclick", mids[int(rng.zipf(1.5)) % 9], 1,
                    f"{x0:.6f}", f"{x1:.6f}", f"{y0:.6f}", f"{y1:.6f}", 0, 0,
                    int(rng.random() < 0.04), int(rng.random() < 0.03), 0] + [-1] * 8)
    return out


def reference_pass(rows: list[list], spec: dict, size: int, cap: int) -> tuple[list[str], list[str], list[tuple]]:
    """The selection rules written out box by box (float32 areas, as the pass computes them)."""
    f = spec["image_filter"]
    boxes = []
    for r in rows:
        x0, x1, y0, y1 = (np.float32(v) for v in r[4:8])
        group, dep = r[10] == 1, r[11] == 1
        boxes.append((r[0], r[2], (x0, y0, x1, y1), group, dep,
                      not group and not dep and (x1 - x0) * (y1 - y0) >= np.float32(spec["boxes"]["min_area"])))
    counts: dict[str, int] = {}
    for b in boxes:
        counts[b[1]] = counts.get(b[1], 0) + b[5]
    cs = spec["classes"]
    classes = [m for m in sorted(counts, key=lambda m: (-counts[m], m)) if counts[m] >= cs["min_instances"]]
    classes = classes[: cs["max_classes"]]
    per_image: dict[str, list] = {}
    for b in boxes:
        if b[1] in classes:
            per_image.setdefault(b[0], []).append(b)
    eligible = []
    for img, bs in per_image.items():
        present = sorted({b[1] for b in bs if b[5]})
        excluded = any((b[3] and f["exclude_group_of"]) or (b[4] and f["exclude_depiction"]) for b in bs)
        if sum(b[5] for b in bs) >= f["min_objects"] and len(present) >= f["min_classes"] and not excluded:
            eligible.append((int(rank_key(np.array([int(img, 16)], np.uint64), spec["seed"])[0]), img, present))
    eligible.sort()
    chosen = [eligible[i][1] for i in sequential_walk([e[2] for e in eligible], size, cap)]
    out = sorted((int(b[0], 16), b[1], *b[2]) for b in boxes if b[0] in chosen and b[5]
                 and b[1] in classes)
    return classes, chosen, out


@pytest.mark.parametrize("filters", [(2, 2, True, True), (1, 1, False, True), (0, 0, True, False)])
def test_pass_matches_the_rules_in_any_row_order(tmp_path: Path, filters: tuple) -> None:
    min_objects, min_classes, group_of, depiction = filters
    spec = {"seed": 5, "classes": {"mode": "auto", "min_instances": 3, "max_classes": 6},
            "boxes": {"min_area": 0.01},
            "image_filter": {"min_objects": min_objects, "min_classes": min_classes,
                             "exclude_group_of": group_of, "exclude_depiction": depiction}}
    rows = random_box_rows(900, seed=min_objects)
    classes, chosen, boxes = reference_pass(rows, spec, size=40, cap=9)
    assert len(chosen) >= 10
    for order_seed in (None, 1):
        if order_seed is not None:
            random.Random(order_seed).shuffle(rows)
        write_random_boxes(tmp_path / "boxes.csv", rows)
        table = select.stream_boxes(tmp_path / "boxes.csv", spec)
        for shift in (select.PAYLOAD_BITS, 62):  # 62: images share truncated keys, the exact sort groups them
            table.shift = shift
            assert select.choose_classes(table, spec, None) == classes
            sel = select.select_images(table, classes, spec, size=40, cap=9)
            assert sel.image_ids == chosen
            got = [(int(i), table.labels[c], *b) for i, c, b in
                   zip(sel.rows.image, sel.rows.cls, sel.rows.box)]
            assert got == boxes


def test_keep_labels_and_spec_mismatch(tmp_path: Path) -> None:
    rows = random_box_rows(400, seed=3)
    write_random_boxes(tmp_path / "boxes.csv", rows)
    spec = {"seed": 0, "classes": {"mode": "auto", "min_instances": 1, "max_classes": 50},
            "boxes": {"min_area": 0.01}, "image_filter": {"min_objects": 1, "min_classes": 1}}
    keep = {"/m/000000", "/m/000002"}
    table = select.stream_boxes(tmp_path / "boxes.csv", spec, keep)
    assert table.labels == sorted(keep)
    assert set(select.choose_classes(table, spec, None)) == keep
    with pytest.raises(ValueError, match="streamed for"):
        select.choose_classes(table, {**spec, "boxes": {"min_area": 0.02}}, None)


def test_box_csv_layout_and_values_are_checked(tmp_path: Path) -> None:
    root = tmp_path / "oi"
    write_root(root)
    spec = {"seed": 0, "boxes": {"min_area": 0.01}, "image_filter": {"min_objects": 2, "min_classes": 2}}
    csv_path = root / "validation-annotations-bbox.csv"
    rows = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join([rows[0] + ",Extra"] + [r + ",0" for r in rows[1:]]) + "\n")
    with pytest.raises(MalformedDataError, match=r"validation-annotations-bbox.csv: .*unexpected: \['Extra'\]"):
        select.stream_boxes(csv_path, spec)
    fields = rows[2].split(",")
    fields[4], fields[5] = fields[5], fields[4]  # XMin > XMax
    csv_path.write_text("\n".join([rows[0], rows[1], ",".join(fields)] + rows[3:]) + "\n")
    with pytest.raises(MalformedDataError, match="box row 2: XMin=0.95, XMax=0.5,.*expected 0 <= min <= max <= 1"):
        select.stream_boxes(csv_path, spec)


def test_explicit_class_without_boxes_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "oi"
    write_root(root)
    spec = tmp_path / "explicit.yaml"
    spec.write_text(SPEC.format(seed=0, size=10).replace("mode: auto", "mode: explicit").replace(
        "explicit: []", "explicit: ['/m/0aaa01', '/m/0zzz99']"))
    with pytest.raises(MalformedDataError, match=r"classes.explicit names \['/m/0zzz99'\]"):
        run_build(root, tmp_path / "o", spec)


def test_rebuild_with_another_spec_leaves_no_stale_outputs(tmp_path: Path) -> None:
    root = tmp_path / "oi"
    write_root(root)
    out = tmp_path / "o"
    first = run_build(root, out, spec_file(tmp_path, seed=0, size=10))
    second = run_build(root, out, spec_file(tmp_path, seed=1, size=4))
    for split in ("train", "val"):
        linked = {p.stem for p in (out / "images" / split).iterdir()}
        assert linked == set(second["selected"][split]), split
        assert {p.stem for p in (out / "seg" / split).iterdir()} == linked
        cropped = {p.stem.rsplit("_", 1)[0] for p in (out / "crops" / split).rglob("*.jpg")}
        assert cropped <= linked
    assert set(first["selected"]["train"]) - set(second["selected"]["train"])  # something had to go
    assert len(list((out / ".work").iterdir())) == 1


def test_prebuilt_copy_of_another_spec_is_refused(tmp_path: Path) -> None:
    from harness.data.layout import OPENIMAGE_MINI
    from harness.data.openimage_mini.ensure import ensure

    root = tmp_path / "data"
    write_root(root / "openimages")
    run_build(root / "openimages", root / OPENIMAGE_MINI, spec_file(tmp_path, seed=0))
    assert ensure(root, str(spec_file(tmp_path, seed=0))) == root / OPENIMAGE_MINI
    with pytest.raises(MalformedDataError, match="built from spec"):
        ensure(root, str(spec_file(tmp_path, seed=1)))


def test_cli_builds_and_reports_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from harness.cli import main

    root = tmp_path / "oi"
    write_root(root)
    spec = spec_file(tmp_path)
    assert main(["data", "openimage-mini", "--oi-root", str(root), "--out", str(tmp_path / "o"), "--spec", str(spec),
                 "--workers", "1"]) == 0
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["selected"]["train"]
    (root / "class-descriptions-boxable.csv").unlink()
    code = main(["data", "openimage-mini", "--oi-root", str(root), "--out", str(tmp_path / "o2"), "--spec", str(spec)])
    assert code == 3 and "class-descriptions-boxable.csv" in capsys.readouterr().err  # a data error
