"""The ``cam_boxes`` stage's signature: recall of the annotated objects by its boxes and by
the whole image, and the share of the image its boxes cover."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.data.coco import read_coco
from harness.data.synthetic.coco import write_coco
from harness.data.synthetic.sizes import DEFAULT_BIAS, TINY
from harness.tasks.cam_localization import object_boxes
from harness_methods.contracam.stages.cam import annotated_split, box_area, box_signature, image_keys


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cam-signature")
    write_coco(root, 0, dataclasses.replace(TINY, coco=(12, 1)), DEFAULT_BIAS)
    return root


def test_boxes_on_the_objects_recall_all_of_them_and_the_whole_image_fewer(coco_root: Path) -> None:
    images = read_coco(coco_root, "train2017").images
    keys = image_keys(coco_root, [im.path for im in images])
    assert annotated_split(coco_root, keys) == "train2017"
    truth = {k: object_boxes(im, 0.01) for k, im in zip(keys, images)}
    total = sum(len(v) for v in truth.values())
    whole = sum(sum((x1 - x0) * (y1 - y0) >= 0.5 for x0, y0, x1, y1 in v) for v in truth.values())
    exact = box_signature(coco_root, "train2017", truth, 0.01)
    assert exact["signature_box_recall"] == 100.0
    assert exact["signature_box_recall_whole_image"] == pytest.approx(100.0 * whole / total)
    # boxes with x and y swapped miss (nearly) every object
    swapped = {k: [(y0, x0, y1, x1) for x0, y0, x1, y1 in v] for k, v in truth.items()}
    assert box_signature(coco_root, "train2017", swapped, 0.01)["signature_box_recall"] < 50.0


def test_no_signature_without_annotations_or_outside_one_coco_split(tmp_path: Path, coco_root: Path) -> None:
    assert annotated_split(tmp_path, ["coco/train2017/a.jpg"]) is None
    assert annotated_split(coco_root, ["coco/train2017/a.jpg", "coco/val2017/b.jpg"]) is None
    assert annotated_split(coco_root, ["imagenet/train/a.jpg"]) is None


def test_box_area_is_the_covered_share_and_the_whole_image_without_boxes() -> None:
    assert box_area([(0.0, 0.0, 0.5, 0.5)]) == 0.25
    assert box_area([(0.0, 0.0, 0.5, 0.5), (0.25, 0.25, 0.75, 0.75)]) == pytest.approx(0.4375)
    assert box_area([]) == 1.0
