"""Feature extraction and its on-disk cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from cls_task_fixtures import backbone_file, write_image_folder
from harness.data.folders import read_image_folder
from harness.core.checkpoints import sha256_file
from harness.tasks.features import FeatureExtractor, TransformSpec

SPEC = TransformSpec(resize=20, crop=16)


class MeanColour(nn.Module):
    """Per-channel mean: a deterministic 3-d feature."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def _dataset(tmp_path: Path):
    write_image_folder(tmp_path / "imgs", ["a", "b"], n_per=5)
    return read_image_folder(tmp_path / "imgs", "toy")


def test_second_run_hits_the_cache_without_a_forward_pass(tmp_path: Path):
    ds = _dataset(tmp_path)
    first = FeatureExtractor(MeanColour(), "model-1", SPEC, cache_dir=tmp_path / "cache", batch_size=4)
    feats = first(ds)
    assert first.forward_batches == 3 and feats.x.shape == (10, 3)
    assert torch.equal(feats.y, torch.tensor([0] * 5 + [1] * 5))
    assert feats.x[5:, 0].mean() > feats.x[:5, 0].mean()  # class b is brighter

    def must_not_load() -> nn.Module:
        raise AssertionError("the model must not be built on a cache hit")

    second = FeatureExtractor(must_not_load, "model-1", SPEC, cache_dir=tmp_path / "cache", batch_size=4)
    again = second(ds)
    assert second.forward_batches == 0
    assert torch.equal(again.x, feats.x) and torch.equal(again.y, feats.y)
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_cache_key_follows_model_transform_and_data(tmp_path: Path):
    ds = _dataset(tmp_path)
    ex = FeatureExtractor(MeanColour(), "model-1", SPEC, cache_dir=tmp_path / "cache")
    base = ex.cache_path(ds)
    assert FeatureExtractor(MeanColour(), "model-2", SPEC, cache_dir=tmp_path / "cache").cache_path(ds) != base
    assert ex.cache_path(ds, spec=TransformSpec(resize=20, crop=12)) != base
    (tmp_path / "imgs" / "a" / "0.png").write_bytes((tmp_path / "imgs" / "a" / "0.png").read_bytes() + b"\0")
    assert ex.cache_path(ds) != base


def test_image_rewritten_at_the_same_size_is_extracted_again(tmp_path: Path):
    ds = _dataset(tmp_path)
    a0 = tmp_path / "imgs" / "a" / "0.png"
    Image.open(a0).save(a0, compress_level=0)  # stored deflate: the file size depends on the dimensions only
    first = FeatureExtractor(MeanColour(), "model-1", SPEC, cache_dir=tmp_path / "cache", batch_size=4)
    feats = first(ds)
    fingerprint, size = ds.fingerprint(), a0.stat().st_size
    Image.fromarray(np.full((24, 24, 3), 250, np.uint8)).save(a0, compress_level=0)
    assert a0.stat().st_size == size and ds.fingerprint() == fingerprint  # the portable fingerprint cannot see it
    second = FeatureExtractor(MeanColour(), "model-1", SPEC, cache_dir=tmp_path / "cache", batch_size=4)
    again = second(ds)
    assert second.forward_batches == 3  # the cache key can
    assert again.x[0, 0] > feats.x[0, 0] + 1.0 and torch.equal(again.x[1:], feats.x[1:])


def test_backbone_file_features_are_resnet_pooled(tmp_path: Path):
    ds = _dataset(tmp_path)
    path = backbone_file(tmp_path / "bb" / "backbone.pth")
    ex = FeatureExtractor.for_backbone(path, TransformSpec(resize=36, crop=32),
                                       {"cache_dir": str(tmp_path / "cache"), "batch_size": 10}, "cpu")
    assert ex.model_key == sha256_file(path)
    feats = ex(ds)
    assert feats.x.shape == (10, 512) and ex.forward_batches == 1
