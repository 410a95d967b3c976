"""Slow end-to-end checks: DDP under torchrun, and kNN quality after the tiny recipe."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from harness.core.checkpoints import load_backbone
from harness.pretrain.loop import CHECKPOINT_FILE, read_checkpoint
from harness.core.registry import import_entry
from pretrain_fixtures import REPO, read_log, run_stage_process, small_recipe, stage_context, write_scenes


@pytest.mark.slow
def test_ddp_two_gloo_ranks_match_single_process(tmp_path: Path) -> None:
    """Same global batch, data order and views on 2 ranks as in 1 process; only BatchNorm
    statistics differ (per rank on CPU, where SyncBatchNorm is unavailable)."""
    root = write_scenes(tmp_path / "data", n=16)
    cfg = small_recipe(epochs=3, loop={"checkpoint_every": 0, "log_every": 1})
    single = run_stage_process("mocov2", root, tmp_path / "single", cfg)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = run_stage_process("mocov2", root, tmp_path / "ddp", cfg, nproc=2)
    assert ddp.returncode == 0, (ddp.stdout + ddp.stderr)[-3000:]
    a, b = read_log(tmp_path / "single"), read_log(tmp_path / "ddp")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 7))
    diffs = [abs(x["loss"] - y["loss"]) / x["loss"] for x, y in zip(a, b)]
    assert max(diffs) < 0.15, (a, b)
    assert read_checkpoint(tmp_path / "ddp" / CHECKPOINT_FILE)["step"] == 6
    assert (tmp_path / "ddp" / "backbone.pth").is_file()


def _features(net: torch.nn.Module, paths: list[Path], size: int) -> torch.Tensor:
    from PIL import Image

    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    imgs = [torch.from_numpy(np.array(Image.open(p).convert("RGB").resize((size, size)))).permute(2, 0, 1)
            for p in paths]
    x = (torch.stack(imgs).float() / 255 - mean) / std
    with torch.no_grad():
        return F.normalize(torch.cat([net(c) for c in x.split(128)]), dim=1)


def knn_top1(net: torch.nn.Module, root: Path, size: int, k: int = 10) -> float:
    """Cosine kNN (majority of k, ties to the nearest) of coco_crop val against train, in %."""
    from harness.data.folders import read_coco_crop

    train, val = read_coco_crop(root, "train"), read_coco_crop(root, "val")
    net.eval()
    ft = _features(net, [p for p, _ in train.samples], size)
    fv = _features(net, [p for p, _ in val.samples], size)
    yt = torch.tensor([y for _, y in train.samples])
    yv = torch.tensor([y for _, y in val.samples])
    idx = (fv @ ft.T).topk(k, dim=1).indices
    votes = F.one_hot(yt[idx], len(train.classes)).float()
    votes += 1e-3 * torch.linspace(1, 0, k).view(1, k, 1)  # nearest neighbour breaks ties
    return float((votes.sum(1).argmax(1) == yv).float().mean() * 100)


@pytest.mark.slow
def test_knn_on_synthetic_crops_is_above_chance_after_tiny_recipe(tmp_path: Path) -> None:
    from harness.data.layout import SYNTHETIC_CLASSES
    from harness.data.synthetic import ensure

    root = ensure(Path(os.environ.get("HARNESS_TEST_CACHE", tmp_path)) / "synthetic", 0, "default")
    cfg = yaml.safe_load((REPO / "methods" / "mocov2" / "recipes" / "tiny.yaml").read_text())
    torch.manual_seed(0)
    import_entry("harness_methods.mocov2.stages:run")(stage_context(tmp_path / "work", root, cfg))
    acc = knn_top1(load_backbone(tmp_path / "work" / "backbone.pth"), root, cfg["augment"]["size"])
    chance = 100 / len(SYNTHETIC_CLASSES)
    print(f"kNN top-1 {acc:.1f}% (chance {chance:.1f}%)")
    assert acc > 1.5 * chance
