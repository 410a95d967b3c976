"""The shift class mappings: regenerated from the reference tables, and validated on use."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.data.layout import SYNTHETIC_CLASSES
from harness.data.image_sets import ClassificationSet
from harness.core.errors import ConfigError, DataError
from harness.tasks import class_maps
from harness.tasks.dist_shift import project, restrict


def test_committed_maps_match_the_reference():
    built = class_maps.build_from_reference(json.loads(class_maps.reference_path().read_text()))
    for name, data in built.items():
        committed = json.loads((class_maps.class_maps_dir() / f"{name}.json").read_text())
        assert committed == data, f"{name}.json is stale: run python -m harness.tasks.class_maps"


def test_label_spaces():
    siscore = class_maps.load_class_map(class_maps.SISCORE_9)
    objectnet = class_maps.load_class_map(class_maps.OBJECTNET_9)
    assert siscore["classes"] == objectnet["classes"] == list(SYNTHETIC_CLASSES)
    assert all(siscore["targets"][c] == [c] for c in siscore["classes"])
    populated = [c for c, t in objectnet["targets"].items() if t]
    assert populated == ["backpack", "banana", "orange", "toaster", "vase"]
    imagenet_r = class_maps.load_class_map(class_maps.IMAGENET_R_9)
    assert imagenet_r["classes"] == list(class_maps.IN9_CLASSES)
    wnids = [w for targets in imagenet_r["targets"].values() for w in targets]
    assert len(wnids) == len(set(wnids)) == 99 and all(re.fullmatch(r"n\d{8}", w) for w in wnids)


def test_imagenet_r_9_builder():
    wnids = [f"n{i:08d}" for i in range(1000)]
    table = {str(i): (i % 10 if i % 10 < 9 else -1) for i in range(1000)}
    data = class_maps.build_imagenet_r_9(table, wnids, ["n00000001", "n00000009", "n00000011"])
    assert data["targets"]["bird"] == ["n00000001", "n00000011"]
    assert sum(len(v) for v in data["targets"].values()) == 2
    with pytest.raises(DataError):
        class_maps.build_imagenet_r_9(table, wnids[::-1], [])


def test_bad_mapping_file_is_a_config_error(tmp_path: Path):
    (tmp_path / "broken.json").write_text('{"classes": ["a"], "targets": {"b": ["x"]}}')
    with pytest.raises(ConfigError, match="broken.json.*outside 'classes': b"):
        class_maps.load_class_map("broken", tmp_path)


def _set(tmp_path: Path, classes: list[str]) -> ClassificationSet:
    return ClassificationSet("shifted", tmp_path, classes, [(tmp_path / f"{c}.jpg", i) for i, c in enumerate(classes)])


def test_projection_relabels_and_names_a_missing_class(tmp_path: Path):
    siscore = class_maps.load_class_map(class_maps.SISCORE_9)
    full = _set(tmp_path, sorted(list(SYNTHETIC_CLASSES) + ["ambulance", "canoe"]))
    projected = project(full, siscore, "siscore_9")
    assert projected.classes == list(SYNTHETIC_CLASSES) and len(projected.samples) == 9
    assert all(projected.classes[label] == path.stem for path, label in projected.samples)
    lacking = _set(tmp_path, [c for c in SYNTHETIC_CLASSES if c != "kite"])
    with pytest.raises(DataError, match=r"siscore_9\.json: label 'kite' maps to class 'kite'"):
        project(lacking, siscore, "siscore_9")
    with pytest.raises(DataError, match=r"siscore_9\.json: label 'kite' is not a class"):
        restrict(lacking, siscore["classes"], siscore["path"], "coco_crop_9")
