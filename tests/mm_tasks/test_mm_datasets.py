"""Dataset checks of the dense tasks: good layouts pass, broken ones fail before training."""
from __future__ import annotations

import json
import shutil

import pytest

from harness.errors import CheckpointError, DataError
from harness.tasks.mm.datasets import check_ade20k, check_coco, check_voc_det, check_voc_seg


def test_checks_accept_the_official_layouts(dense_root):
    coco = check_coco(dense_root)
    assert coco.classes[0] == "zebra" and len(coco.classes) == 9  # categories sorted by id
    assert coco.sizes == {"train2017": 12, "val2017": 6}
    assert check_coco(dense_root).fingerprint == coco.fingerprint
    voc = check_voc_det(dense_root)
    assert "banana" in voc.classes and voc.sizes["VOC2007_test"] == 6
    ade = check_ade20k(dense_root)
    assert len(ade.classes) == 150 and ade.sizes == {"training": 8, "validation": 4}
    seg = check_voc_seg(dense_root)
    assert len(seg.classes) == 21 and seg.sizes == {"train": 6, "aug": 6, "val": 4}


@pytest.fixture
def broken_root(tmp_path, dense_root):
    root = tmp_path / "root"
    shutil.copytree(dense_root, root)
    return root


def test_coco_missing_annotation_file(broken_root):
    (broken_root / "coco" / "annotations" / "instances_val2017.json").unlink()
    with pytest.raises(DataError, match=r"instances_val2017\.json: missing"):
        check_coco(broken_root)


def test_coco_empty_annotations_and_missing_image(broken_root):
    ann = broken_root / "coco" / "annotations" / "instances_train2017.json"
    data = json.loads(ann.read_text())
    ann.write_text(json.dumps(dict(data, annotations=[])))
    with pytest.raises(DataError, match="non-empty list under 'annotations'"):
        check_coco(broken_root)
    ann.write_text(json.dumps(data))
    (broken_root / "coco" / "train2017" / data["images"][3]["file_name"]).unlink()
    with pytest.raises(DataError, match="image listed in instances_train2017.json is missing"):
        check_coco(broken_root)


def test_voc_empty_split_and_bad_xml(broken_root):
    split = broken_root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main" / "trainval.txt"
    first = split.read_text().split()[0]
    split.write_text("\n")
    with pytest.raises(DataError, match="empty split list"):
        check_voc_det(broken_root)
    split.write_text(first + "\n")
    (broken_root / "VOCdevkit" / "VOC2012" / "Annotations" / f"{first}.xml").write_text("<annotation><object>")
    with pytest.raises(DataError, match="not valid XML"):
        check_voc_det(broken_root)


def test_ade_without_images_and_voc_seg_without_aug(broken_root):
    for image in (broken_root / "ade" / "ADEChallengeData2016" / "images" / "validation").glob("*.jpg"):
        image.unlink()
    with pytest.raises(DataError, match="no .jpg images"):
        check_ade20k(broken_root)
    (broken_root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "aug.txt").unlink()
    with pytest.raises(DataError, match=r"aug\.txt: missing \(VOC12aug split"):
        check_voc_seg(broken_root)


@pytest.mark.parametrize("task", ["coco_det", "voc_det", "ade20k_seg", "voc_seg"])
def test_task_fails_before_training_on_broken_data(task, tmp_path, mm_ctx, backbone_r18):
    import importlib
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[2]
    entry = yaml.safe_load((repo / "benchmarks" / "tasks" / f"{task}.yaml").read_text())["entry"]
    module, cls = entry.split(":")
    empty = tmp_path / "empty_root"
    empty.mkdir()
    ctx = mm_ctx(task, tmp_path / "work", empty, backbone_r18)
    with pytest.raises(DataError):
        getattr(importlib.import_module(module), cls)().run(ctx)
    assert not (tmp_path / "work" / "mmengine").exists()


def test_task_fails_on_backbone_file_with_missing_key(tmp_path, dense_root, mm_ctx, backbone_r18):
    import torch

    from harness.tasks.mm.coco_det import CocoDet

    state = torch.load(backbone_r18, weights_only=True)
    del state["bn1.weight"]
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): bn1\.weight"):
        CocoDet().run(mm_ctx("coco_det", tmp_path / "work", dense_root, path))
    assert not (tmp_path / "work" / "mmengine").exists()
