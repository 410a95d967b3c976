"""dist_shift on a data root whose shifted set lacks a class the mapping names."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data.layout import SYNTHETIC_CLASSES
from harness.core.errors import DataError
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


def _imagenet_r(root: Path, drop: str | None = None) -> dict[str, str]:
    """An ImageNet-R tree with one image per folder the mapping names, plus an unmapped folder."""
    from harness.tasks import class_maps

    mapping = class_maps.load_class_map(class_maps.IMAGENET_R_9)
    label_of = {w: label for label, wnids in mapping["targets"].items() for w in wnids}
    for wnid in [*label_of, "n07753592"]:  # banana: in ImageNet-R, outside ImageNet-9
        if wnid == drop:
            continue
        (root / "imagenet-r" / wnid).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "imagenet-r" / wnid / "a.jpg")
    return label_of


def test_imagenet_r_folders_take_their_imagenet9_label(tmp_path: Path):
    from harness.tasks.dist_shift import imagenet_r_set

    label_of = _imagenet_r(tmp_path)
    ds = imagenet_r_set(tmp_path, {})
    assert len(ds.samples) == len(label_of) == 99
    assert {path.parent.name: ds.classes[y] for path, y in ds.samples} == label_of


def test_imagenet_r_without_a_mapped_folder_fails_naming_file_and_class(tmp_path: Path):
    _imagenet_r(tmp_path, drop="n02085620")
    ex = FeatureExtractor(_never_built, "x", TransformSpec(), cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=r"imagenet_r_9\.json: label 'dog' maps to class 'n02085620'"):
        evaluate_dist_shift(ex, tmp_path, {"siscore_factors": []}, "cpu")
