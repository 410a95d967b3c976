"""BG-Gap: its definition, and that it separates a background-biased from an object-focused backbone."""
from __future__ import annotations

from pathlib import Path

import pytest

from cls_task_fixtures import train_on_parts, write_bg_challenge
from harness.core.errors import DataError
from harness.tasks.bg_shift import bg_gap, evaluate_bg_shift, present_variants
from harness.tasks.features import FeatureExtractor, TransformSpec

CFG = {"resize": 24, "crop": 24, "l2_grid": {"start": -4, "stop": 3, "num": 8}, "max_iter": 100, "tol": 1e-4,
       "val_size": 0.2}


def test_bg_gap_on_a_hand_made_case():
    assert bg_gap({"original": 90.0, "mixed_same": 80.0, "mixed_rand": 62.5}) == pytest.approx(17.5)
    with pytest.raises(DataError, match="mixed_rand"):
        bg_gap({"mixed_same": 80.0})


def test_background_biased_backbone_has_the_larger_gap(tmp_path: Path):
    root = write_bg_challenge(tmp_path / "data")
    assert present_variants(root) == ["original", "only_fg", "mixed_same", "mixed_rand"]
    results = {}
    for keep in ("bg", "fg"):
        ex = FeatureExtractor(train_on_parts(keep), f"small-{keep}", TransformSpec(**{k: CFG[k] for k in ("resize", "crop")}),
                              cache_dir=tmp_path / "cache", batch_size=64)
        results[keep] = evaluate_bg_shift(ex, root, CFG, "cpu")
    bg, fg = results["bg"].metrics, results["fg"].metrics
    assert bg["acc_original"] > 90 and fg["acc_original"] > 90
    assert bg["bg_gap"] > 50 and fg["bg_gap"] < 15
    assert results["bg"].higher_is_better["bg_gap"] is False
    assert results["fg"].higher_is_better["acc_mixed_rand"] is True
    assert results["bg"].dataset["sizes"]["original_train"] == 90
    assert results["bg"].framework["name"] == "torch"


def test_missing_original_is_a_data_error(tmp_path: Path):
    (tmp_path / "bg_challenge" / "mixed_rand" / "val").mkdir(parents=True)
    with pytest.raises(DataError, match="original"):
        evaluate_bg_shift(FeatureExtractor(lambda: None, "x", TransformSpec()), tmp_path, CFG, "cpu")
