"""``harness data verify``: a clean root passes; each kind of damage is reported with its file."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from harness.data import layout
from harness.data.registry import datasets
from harness.data.verify import VerifyRow, format_table, sample_indices, verify, verify_main
from harness.core.errors import ConfigError
from reader_fixtures import png_labels

PROBLEMS = ("missing", "malformed")


def problems(rows: list[VerifyRow]) -> list[VerifyRow]:
    return [r for r in rows if r.status in PROBLEMS]


def test_clean_root_passes_and_reports_every_dataset(data_root: Path) -> None:
    rows = verify(data_root)
    assert problems(rows) == []
    absent = {r.dataset for r in rows if r.status == "absent" and r.check == "layout"}
    assert absent == set()
    read = {r.dataset for r in rows if r.status == "ok" and r.check.startswith("read")}
    assert read == {name for name, d in datasets().items() if d.splits}
    out = io.StringIO()
    assert verify_main(data_root, out=out) == 0
    assert out.getvalue().rstrip().splitlines()[-1].startswith("OK:")


def test_count_differences_fail_only_when_strict(data_root: Path) -> None:
    rows = verify(data_root, "coco")
    differs = [r for r in rows if r.status == "differs"]
    assert any("118,287" in r.detail for r in differs) and any("80" in r.detail for r in differs)
    assert verify_main(data_root, "coco", out=io.StringIO()) == 0
    assert verify_main(data_root, "coco", strict_counts=True, out=io.StringIO()) == 1


def test_corrupt_and_truncated_images_are_named(broken_root: Path) -> None:
    garbage = broken_root / layout.COCO / "val2017" / "000000000009.jpg"
    garbage.write_bytes(b"\xff\xd8 not really a jpeg")
    cut = broken_root / layout.FOOD / "images" / "baby_back_ribs" / "1008.jpg"
    cut.write_bytes(cut.read_bytes()[:200])
    rows = problems(verify(broken_root))
    assert {(r.status, r.dataset, r.path) for r in rows} == {("malformed", "coco", str(garbage)),
                                                             ("malformed", "food101", str(cut))}
    out = io.StringIO()
    assert verify_main(broken_root, out=out) == 1
    assert str(garbage) in out.getvalue() and "FAILED" in out.getvalue()


def test_segmentation_label_out_of_range_is_named(broken_root: Path) -> None:
    bad = broken_root / layout.ADE20K / "annotations" / "validation" / "ADE_val_00000001.png"
    labels = np.zeros((8, 10), np.uint8)
    labels[0, 0] = 151
    png_labels(bad, labels)
    voc = broken_root / layout.VOC / "VOC2012" / "SegmentationClass" / "2007_000033.png"
    png_labels(voc, np.full((8, 10), 21, np.uint8), palette=True)
    rows = problems(verify(broken_root))
    assert {(r.dataset, r.path) for r in rows} == {("ade20k", str(bad)), ("voc2012_seg", str(voc))}
    assert all("151" in r.detail or "21" in r.detail for r in rows)


def test_size_mismatch_between_annotation_and_image(broken_root: Path) -> None:
    ann = broken_root / layout.COCO / "annotations" / "instances_train2017.json"
    data = json.loads(ann.read_text())
    data["images"][1]["width"] = 11
    ann.write_text(json.dumps(data))
    rows = problems(verify(broken_root, "coco"))
    assert [(r.status, Path(r.path).name) for r in rows] == [("malformed", "000000000002.jpg")]
    assert "11x8" in rows[0].detail


def test_reader_errors_become_rows_with_their_kind(broken_root: Path) -> None:
    (broken_root / layout.VOC / "VOC2012" / "SegmentationClassAug" / "2008_000002.png").unlink()
    (broken_root / layout.CUB / "classes.txt").write_text("1 a\n3 b\n")
    rows = problems(verify(broken_root))
    assert {(r.status, r.dataset, Path(r.path).name) for r in rows} == {
        ("missing", "voc2012_seg", "2008_000002.png"),  # aug and trainaug both list it
        ("malformed", "cub", "classes.txt")}


def test_missing_required_split_and_absent_datasets(broken_root: Path) -> None:
    (broken_root / layout.COCO / "annotations" / "instances_train2017.json").unlink()
    rows = verify(broken_root, "coco")
    assert [(r.status, r.check) for r in problems(rows)] == [("missing", "layout train2017")]
    for name in ("cifar-10-batches-py",):
        for f in (broken_root / name).iterdir():
            f.unlink()
        (broken_root / name).rmdir()
    assert [r.status for r in verify(broken_root, "cifar10")] == ["missing"]
    assert "cifar10" in {r.dataset for r in verify(broken_root) if r.status == "absent"}


def test_uncleaned_backgrounds_challenge_val_is_refused(broken_root: Path) -> None:
    folder = broken_root / layout.BG_CHALLENGE / "original" / "val"
    extra = sorted((folder / "00_dog").iterdir())[0]
    (folder / "00_dog" / "n0_extra.JPEG").write_bytes(extra.read_bytes())  # one class larger than the others
    rows = [r for r in problems(verify(broken_root, "bg_challenge")) if r.check == "count original/val"]
    assert len(rows) == 1 and "'dog': 3" in rows[0].detail and "uncleaned" in rows[0].detail
    assert rows[0].path == str(folder)
    assert verify_main(broken_root, "bg_challenge", out=io.StringIO()) == 1


def test_unknown_dataset_and_empty_root(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown dataset"):
        verify(tmp_path, "imagenet")
    rows = verify(tmp_path)
    assert problems(rows)[-1].check == "data root"
    assert verify(tmp_path / "nope")[0].status == "missing"
    assert verify_main(tmp_path, out=io.StringIO()) == 1


def test_format_table_aligns_columns() -> None:
    rows = [VerifyRow("ok", "coco", "read val2017", "/d/coco", "5 items"),
            VerifyRow("malformed", "ade20k", "decode training", "/d/ade/x.png", "label values [151]")]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["STATUS", "DATASET", "CHECK", "PATH", "DETAIL"]
    assert lines[1].index("coco") == lines[2].index("ade20k") == lines[0].index("DATASET")
    assert lines[2].endswith("/d/ade/x.png  label values [151]")


def test_sample_indices_are_spread_and_complete() -> None:
    assert sample_indices(5, 8) == [0, 1, 2, 3, 4]
    assert sample_indices(100, 3) == [0, 50, 99]
    assert sample_indices(10, 0) == [] and sample_indices(10, 1) == [0]
