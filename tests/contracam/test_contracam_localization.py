"""The cam_localization task: metrics, ground truth, heads lookup, a run on small sets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.api import TaskContext
from harness.core.checkpoints import save_backbone
from harness.core.heads import save_heads
from harness.core.errors import CheckpointError, ConfigError
from harness.pretrain.models import build_head, build_resnet, mlp_spec
from harness.tasks.cam_localization import (CamLocalization, LocalizationConfig, box_iou, foreground_box,
                                            found_boxes, mask_iou, resize_binary)


def test_mask_iou_and_empty_masks():
    a = np.zeros((4, 4), bool)
    assert mask_iou(a, a) == 1.0
    b = a.copy()
    b[:2] = True
    c = a.copy()
    c[1:3] = True
    assert mask_iou(b, c) == pytest.approx(4 / 12)
    assert mask_iou(b, a) == 0.0


def test_box_recall_counts_ground_truth_found_at_iou_half():
    assert box_iou((0, 0, 1, 1), (0, 0, 0.5, 1)) == pytest.approx(0.5)
    gt = [(0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)]
    assert found_boxes(gt, [(0.0, 0.0, 0.5, 0.55)], 0.5) == 1
    assert found_boxes(gt, [], 0.5) == 0


def test_ground_truth_helpers():
    m = np.zeros((10, 20), bool)
    m[2:5, 4:10] = True
    assert foreground_box(m) == [(0.2, 0.2, 0.5, 0.5)]
    assert foreground_box(np.zeros((3, 3), bool)) == []
    assert resize_binary(m, 40)[9:19, 9:19].all() and not resize_binary(m, 40)[25:].any()


def test_config_rejects_unknown_keys_and_datasets():
    with pytest.raises(ConfigError, match="iteration"):
        LocalizationConfig.from_cfg({"iteration": 3})
    with pytest.raises(ConfigError, match="datasets"):
        LocalizationConfig.from_cfg({"datasets": ["voc"]})


def _object_image(rng: np.random.Generator, side: int) -> tuple[np.ndarray, np.ndarray]:
    image = (rng.random((side, side, 3)) * 60 + 40).astype(np.uint8)
    mask = np.zeros((side, side), bool)
    y, x = rng.integers(0, side // 2, 2)
    mask[y:y + side // 2, x:x + side // 2] = True
    image[mask] = rng.integers(150, 255, 3)
    return image, mask


def write_cub(root: Path, n: int = 6, side: int = 40) -> None:
    rng = np.random.default_rng(0)
    cub = root / "CUB_200_2011"
    lines, split = [], []
    for i in range(1, n + 1):
        rel = f"001.Bird/bird_{i}.jpg"
        image, mask = _object_image(rng, side)
        (cub / "images" / "001.Bird").mkdir(parents=True, exist_ok=True)
        (cub / "segmentations" / "001.Bird").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(cub / "images" / rel)
        Image.fromarray(mask.astype(np.uint8) * 255).save(cub / "segmentations" / rel.replace(".jpg", ".png"))
        lines.append(f"{i} {rel}")
        split.append(f"{i} {2 if i > 1 else 0}")
    (cub / "images.txt").write_text("\n".join(lines) + "\n")
    (cub / "train_val_test_split.txt").write_text("\n".join(split) + "\n")


def write_flowers(root: Path, n: int = 5, side: int = 40) -> None:
    from scipy.io import savemat

    rng = np.random.default_rng(1)
    fl = root / "flowers-102"
    (fl / "jpg").mkdir(parents=True)
    (fl / "segmim").mkdir()
    for i in range(1, n + 1):
        image, mask = _object_image(rng, side)
        Image.fromarray(image).save(fl / "jpg" / f"image_{i:05d}.jpg")
        seg = image.copy()
        seg[~mask] = (0, 0, 254)
        Image.fromarray(seg).save(fl / "segmim" / f"segmim_{i:05d}.jpg", quality=100)
    savemat(fl / "setid.mat", {"trnid": np.arange(1, n + 1)[None], "valid": np.array([[1]]), "tstid": np.array([[1]])})


def export_model(folder: Path, heads: bool = True) -> Path:
    torch.manual_seed(0)
    net = build_resnet("resnet18")
    path = save_backbone(net, folder, {"arch": "resnet18", "method": "test"})
    if heads:
        spec = mlp_spec([512, 64, 16])
        save_heads(folder, {"projector": build_head(spec)}, {"projector": spec})
    return path


def _ctx(backbone: Path, root: Path, cfg: dict) -> TaskContext:
    return TaskContext(name="cam_localization", cfg=cfg, workdir=root / "work", data_root=root, seed=0, device="cpu",
                       preset="tiny", task="cam_localization", backbone=backbone)


TINY = {"image_size": 32, "batch_size": 4, "iterations": 2, "expand_res": 2, "crf": False, "max_images": 4}


def test_task_runs_on_cub_flowers_and_coco(contracam_root, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    write_cub(root)
    write_flowers(root)
    (root / "coco").symlink_to(contracam_root / "coco")
    backbone = export_model(tmp_path / "model")
    result = CamLocalization().run(_ctx(backbone, root, {**TINY, "datasets": ["cub", "flowers", "coco"]}))
    assert set(result.metrics) == {f"{d}_{m}" for d in ("cub", "flowers", "coco") for m in ("mask_miou", "box_recall50")}
    assert all(0.0 <= v <= 100.0 for v in result.metrics.values())
    assert all(result.higher_is_better.values())
    assert result.dataset["sizes"] == {"cub": 4, "flowers": 4, "coco": 4}
    again = CamLocalization().run(_ctx(backbone, root, {**TINY, "datasets": ["cub", "flowers", "coco"]}))
    assert again.metrics == result.metrics


def test_task_needs_the_projector_beside_the_backbone(contracam_root, tmp_path):
    backbone = export_model(tmp_path / "model", heads=False)
    with pytest.raises(CheckpointError, match="heads.pth"):
        CamLocalization().run(_ctx(backbone, contracam_root, {**TINY, "datasets": ["coco"]}))


class _BrightnessCam:
    """A stand-in CAM whose mask is the bright pixels of the input: the objects of
    ``_object_image`` exactly, so the metrics have known values."""

    def __init__(self, keep: str = "all") -> None:
        self.keep = keep

    def __call__(self, x: torch.Tensor, iterations: int) -> torch.Tensor:
        mask = (x.mean(dim=1, keepdim=True) > 0).float()
        if self.keep == "none":
            mask.zero_()
        elif self.keep == "left":
            mask[..., mask.shape[-1] // 2:] = 0
        return mask


def _truth(tmp_path: Path, n: int = 3, side: int = 40) -> list:
    from harness.tasks.cam_localization import GroundTruth

    rng = np.random.default_rng(3)
    items = []
    for i in range(n):
        image, mask = _object_image(rng, side)
        path = tmp_path / f"{i}.png"
        Image.fromarray(image).save(path)
        items.append(GroundTruth(path, mask, foreground_box(mask)))
    return items


def test_evaluate_scores_exact_masks_at_one_hundred(tmp_path):
    from harness.tasks.cam_localization import evaluate

    items = _truth(tmp_path)
    cfg = LocalizationConfig.from_cfg({**TINY, "image_size": 40, "min_component": 0.0})
    exact = evaluate(_BrightnessCam(), items, cfg, "cpu")
    assert (exact["mask_miou"], exact["box_recall"]) == (100.0, 100.0)
    assert exact["iou"].tolist() == [1.0] * 3 and (exact["found"] == exact["boxes"]).all()  # the per-image values
    none = evaluate(_BrightnessCam("none"), items, cfg, "cpu")
    assert (none["mask_miou"], none["box_recall"]) == (0.0, 0.0) and not none["found"].any()


def test_evaluate_partial_masks_give_the_hand_computed_iou(tmp_path):
    from harness.tasks.cam_localization import evaluate

    items = _truth(tmp_path)
    cfg = LocalizationConfig.from_cfg({**TINY, "image_size": 40, "min_component": 0.0})
    expected = []
    for it in items:
        left = it.mask.copy()
        left[:, 20:] = False
        expected.append(left.sum() / it.mask.sum())  # the prediction is inside the truth
    scores = evaluate(_BrightnessCam("left"), items, cfg, "cpu")
    assert scores["mask_miou"] == pytest.approx(100 * float(np.mean(expected)))


class _WeakCam(_BrightnessCam):
    """The exact object masks at 0.3: empty above a 0.5 threshold, the object as a support."""

    def __call__(self, x: torch.Tensor, iterations: int) -> torch.Tensor:
        return super().__call__(x, iterations) * 0.3


def test_official_binarize_takes_the_cleaned_support(tmp_path):
    from harness.tasks.cam_localization import evaluate

    items = _truth(tmp_path)
    soft = LocalizationConfig.from_cfg({**TINY, "image_size": 40, "min_component": 0.0})
    official = LocalizationConfig.from_cfg({**TINY, "image_size": 40, "min_component": 0.0, "binarize": "official"})
    assert evaluate(_WeakCam(), items, soft, "cpu")["mask_miou"] == 0.0
    assert evaluate(_WeakCam(), items, official, "cpu")["mask_miou"] == 100.0


def test_official_order_is_the_seed_42_shuffle_of_the_reader_order(tmp_path):
    from harness.tasks.cam_localization import load_truth

    root = tmp_path / "data"
    root.mkdir()
    write_cub(root, n=9)  # 8 test images
    reader = [it.image.name for it in load_truth("cub", root, LocalizationConfig.from_cfg({}))]
    shuffled = [it.image.name for it in load_truth("cub", root, LocalizationConfig.from_cfg({"order": "official"}))]
    ids = np.array(reader)
    np.random.RandomState(42).shuffle(ids)  # what the official segmentation datasets do to their ids
    assert shuffled == ids.tolist() and shuffled != reader


def test_config_rejects_unknown_official_modes():
    for key in ("order", "numerator", "binarize"):
        with pytest.raises(ConfigError, match=key):
            LocalizationConfig.from_cfg({key: "other"})
