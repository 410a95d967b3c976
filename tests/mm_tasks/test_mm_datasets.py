"""Dataset checks of the dense tasks: good layouts pass, broken ones fail before training."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from harness.core.errors import CheckpointError, DataError
from harness.tasks.mm.datasets import check_ade20k, check_coco, check_voc_det, check_voc_seg


def test_checks_accept_the_synthetic_benchmark(dense_root):
    coco = check_coco(dense_root)
    assert len(coco.classes) == 9 and coco.classes[0] == "zebra"  # category id 24 comes first
    assert coco.sizes["train2017"] > 0 and coco.sizes["val2017"] > 0
    assert check_coco(dense_root).fingerprint == coco.fingerprint
    voc = check_voc_det(dense_root)
    assert len(voc.classes) == 20 and set(voc.sizes) == {"VOC2007_trainval", "VOC2012_trainval", "VOC2007_test"}
    ade = check_ade20k(dense_root)
    assert len(ade.classes) == 150 and set(ade.sizes) == {"training", "validation"}
    seg = check_voc_seg(dense_root)
    assert len(seg.classes) == 21 and set(seg.sizes) == {"train", "aug", "val"}
    assert len({coco.fingerprint, voc.fingerprint, ade.fingerprint, seg.fingerprint}) == 4


@pytest.fixture
def broken_root(tmp_path, dense_root):
    root = tmp_path / "root"
    for name in ("coco", "VOCdevkit", "ade"):
        shutil.copytree(dense_root / name, root / name)
    return root


def test_coco_missing_annotation_file(broken_root):
    (broken_root / "coco" / "annotations" / "instances_val2017.json").unlink()
    with pytest.raises(DataError, match=r"instances_val2017\.json: missing"):
        check_coco(broken_root)


def test_coco_without_images_or_annotations(broken_root):
    ann = broken_root / "coco" / "annotations" / "instances_train2017.json"
    data = json.loads(ann.read_text())
    ann.write_text(json.dumps(dict(data, annotations=[])))
    with pytest.raises(DataError, match="no image of the split has an object annotation"):
        check_coco(broken_root)
    ann.write_text(json.dumps(dict(data, images=[], annotations=[])))
    with pytest.raises(DataError, match="the split lists no images"):
        check_coco(broken_root)


def test_voc_empty_split_and_bad_xml(broken_root):
    split = broken_root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main" / "trainval.txt"
    first = split.read_text().split()[0]
    split.write_text("\n")
    with pytest.raises(DataError, match="the split lists no images"):
        check_voc_det(broken_root)
    split.write_text(first + "\n")
    (broken_root / "VOCdevkit" / "VOC2012" / "Annotations" / f"{first}.xml").write_text("<annotation><object>")
    with pytest.raises(DataError, match=f"{first}.xml"):
        check_voc_det(broken_root)


def test_ade_without_images_and_voc_seg_without_aug(broken_root):
    for image in (broken_root / "ade" / "ADEChallengeData2016" / "images" / "validation").glob("*.jpg"):
        image.unlink()
    with pytest.raises(DataError, match="no .jpg images"):
        check_ade20k(broken_root)
    (broken_root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "aug.txt").unlink()
    with pytest.raises(DataError, match=r"aug\.txt: missing"):
        check_voc_seg(broken_root)


@pytest.mark.parametrize("task", ["coco_det", "voc_det", "ade20k_seg", "voc_seg"])
def test_task_fails_before_training_on_broken_data(task, tmp_path, mm_ctx, task_entry, backbone_r18):
    empty = tmp_path / "empty_root"
    empty.mkdir()
    with pytest.raises(DataError):
        task_entry(task)().run(mm_ctx(task, tmp_path / "work", empty, backbone_r18))
    assert not (tmp_path / "work" / "mmengine").exists()


def test_task_fails_on_backbone_file_with_missing_key(tmp_path, dense_root, mm_ctx, task_entry, backbone_r18):
    state = torch.load(backbone_r18, weights_only=True)
    del state["bn1.weight"]
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"missing keys \['bn1\.weight'\] \(1\)"):
        task_entry("coco_det")().run(mm_ctx("coco_det", tmp_path / "work", dense_root, path))
    assert not (tmp_path / "work" / "mmengine").exists()
