"""dist_shift: data roots whose shifted set lacks a class the mapping names, and the
ImageNet-9 head's validation split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.core.errors import ConfigError, DataError
from harness.data.bg_challenge import read_bg_challenge
from harness.data.layout import SYNTHETIC_CLASSES
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


def _in9_root(tmp_path: Path) -> Path:
    """An ImageNet-9 ``original`` variant (6 train, 3 val images a class, each class its own
    colour) beside an ImageNet-R tree; no SI-Score, no ObjectNet."""
    from harness.tasks.class_maps import IN9_CLASSES

    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 3)):
        for label, name in enumerate(IN9_CLASSES):
            folder = root / "bg_challenge" / "original" / split / f"{label:02d}_{name}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(28 * label + rng.normal(0, 12, (16, 16, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.JPEG")
    _imagenet_r(root)
    return root


def _pooled_pixels() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1))


CFG = {"siscore_factors": [], "resize": 16, "crop": 16, "l2_grid": {"start": -4, "stop": 2, "num": 4},
       "max_iter": 20, "val_size": 0.25}


def test_imagenet_r_9_head_selects_on_original_val_as_contracam(tmp_path: Path):
    root = _in9_root(tmp_path)
    ex = FeatureExtractor(_pooled_pixels, "pool", TransformSpec(resize=16, crop=16), cache_dir=tmp_path / "cache")
    official = evaluate_dist_shift(ex, root, {**CFG, "in9_val": "original_val", "refit": False,
                                              "protocol": "contracam"}, "cpu")
    seeded = evaluate_dist_shift(ex, root, CFG, "cpu")
    n_train = len(read_bg_challenge(root, "original", "train").samples)
    n_val = len(read_bg_challenge(root, "original", "val").samples)
    head = official.extra["heads"]["in9"]
    assert head["sizes"] == {"train": n_train, "val": n_val}  # fitted on all of train, selected on original/val
    assert max(head["val_scores"]) == pytest.approx(official.metrics["clean_in9"])
    assert seeded.extra["heads"]["in9"]["sizes"] == {"train": n_train - round(0.25 * n_train),
                                                     "val": round(0.25 * n_train)}
    assert {"imagenet_r_9", "imagenet_r_9_minus_clean"} <= set(official.metrics)


def test_selecting_on_original_val_refuses_a_refit_and_unknown_modes(tmp_path: Path):
    root = _in9_root(tmp_path)
    ex = FeatureExtractor(_pooled_pixels, "pool", TransformSpec(resize=16, crop=16), cache_dir=tmp_path / "cache")
    with pytest.raises(ConfigError, match="refit: false"):
        evaluate_dist_shift(ex, root, {**CFG, "in9_val": "original_val"}, "cpu")
    with pytest.raises(ConfigError, match="in9_val must be"):
        evaluate_dist_shift(ex, root, {**CFG, "in9_val": "test"}, "cpu")
