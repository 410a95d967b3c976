"""dist_shift on a data root whose shifted set lacks a class the mapping names."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data.layout import SYNTHETIC_CLASSES
from harness.errors import DataError
from harness.tasks.dist_shift import evaluate_dist_shift
from harness.tasks.features import FeatureExtractor, TransformSpec


def _siscore_area(root: Path, classes: list[str]) -> None:
    base = root / "siscore" / "area"
    rows = ["image_id,x_coord,y_coord,area,rotation,foreground_class"]
    for i, name in enumerate(classes):
        (base / name).mkdir(parents=True)
        Image.fromarray(np.full((8, 8, 3), 10 * i, np.uint8)).save(base / name / f"{i}.jpg")
        rows.append(f"{i},0.5,0.5,0.2,0,{name}")
    (base / "metadata.csv").write_text("\n".join(rows) + "\n")


def _objectnet(root: Path, folders: list[str]) -> None:
    for name in folders:
        (root / "objectnet-1.0" / "images" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "objectnet-1.0" / "images" / name / "a.png")


def _never_built() -> None:
    raise AssertionError("no feature may be extracted before the mappings are checked")


def test_siscore_without_a_mapped_class_fails_naming_file_and_class(tmp_path: Path):
    _siscore_area(tmp_path, [c for c in SYNTHETIC_CLASSES if c != "kite"] + ["canoe"])
    ex = FeatureExtractor(_never_built, "x", TransformSpec(), cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=r"siscore_9\.json: label 'kite' maps to class 'kite'"):
        evaluate_dist_shift(ex, tmp_path, {"siscore_factors": ["area"]}, "cpu")


def test_objectnet_without_a_mapped_folder_fails_naming_file_and_class(tmp_path: Path):
    _objectnet(tmp_path, ["backpack", "banana", "orange", "vase"])  # no toaster
    ex = FeatureExtractor(_never_built, "x", TransformSpec(), cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=r"objectnet_9\.json: label 'toaster' maps to class 'toaster'"):
        evaluate_dist_shift(ex, tmp_path, {"siscore_factors": []}, "cpu")


def test_no_shifted_set_is_a_data_error(tmp_path: Path):
    ex = FeatureExtractor(_never_built, "x", TransformSpec(), cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="no shifted set"):
        evaluate_dist_shift(ex, tmp_path, {}, "cpu")
