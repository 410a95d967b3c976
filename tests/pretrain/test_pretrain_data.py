"""Scene listing, decoding, collation and the step-indexed sampler."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.errors import ConfigError, DataError
from harness.pretrain.data import SceneImages, StepSampler, collate, list_scene_images, resized_shape
from pretrain_fixtures import write_scenes


def test_listing_is_sorted_and_missing_folder_is_named(tmp_path: Path) -> None:
    root = write_scenes(tmp_path, n=5)
    paths = list_scene_images(root)
    assert [p.name for p in paths] == sorted(p.name for p in paths) and len(paths) == 5
    with pytest.raises(DataError, match="train2017"):
        list_scene_images(tmp_path / "nowhere")


def test_decode_resizes_short_side_and_caps_long_side(tmp_path: Path) -> None:
    root = write_scenes(tmp_path, n=4)
    ds = SceneImages(list_scene_images(root), short_side=32, max_long=48, cache=True, meta=lambda i, p: {"name": p.name})
    for i in range(len(ds)):
        item = ds[i]
        h, w = item["image"].shape[1:]
        assert min(h, w) <= 32 and max(h, w) <= 48 and item["meta"]["name"] == ds.paths[i].name
    assert resized_shape(100, 400, 50, 100) == (25, 100)
    (root / "coco" / "train2017" / "000000000001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="000000000001.jpg"):
        SceneImages(list_scene_images(root), short_side=32, cache=True)


def test_collate_pads_by_replication_and_keeps_sizes(tmp_path: Path) -> None:
    ds = SceneImages(list_scene_images(write_scenes(tmp_path, n=3)), short_side=30)
    raw = collate([ds[i] for i in range(3)])
    for i in range(3):
        h, w = raw.sizes[i].tolist()
        assert (raw.images[i, :, :h, :w] == ds[i]["image"]).all()
        assert (raw.images[i, :, :h, w:] == raw.images[i, :, :h, w - 1:w]).all()


def test_sampler_resumes_exactly_and_splits_ranks() -> None:
    full = list(StepSampler(20, 8, seed=1, epochs=3))
    assert len(full) == 6 and all(len(b) == 8 for b in full)
    assert full[0] != list(range(8)) and full[0] != full[2]  # shuffled, and a new order every epoch
    assert list(StepSampler(20, 8, seed=1, epochs=3, start_step=4)) == full[4:]
    ranks = [list(StepSampler(20, 8, seed=1, epochs=3, rank=r, world_size=2)) for r in range(2)]
    assert [a + b for a, b in zip(*ranks)] == full
    assert list(StepSampler(20, 8, seed=2, epochs=3)) != full
    with pytest.raises(ConfigError, match="larger than the dataset"):
        StepSampler(4, 8, seed=0, epochs=1)
