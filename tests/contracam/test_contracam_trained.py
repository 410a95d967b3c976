"""ContraCAM of a trained tiny model on synthetic scenes locates the objects.

A vanilla MoCo v2 ResNet-18 (the ``pretrain`` stage, a few epochs at 32 px) is trained
on generated scenes (a striped object of random shape, colours and place on grey noise
shared by all images, so only the object tells the images apart); its CAMs (top pixels, as
many as the object has) must overlap the objects better than a centred box of the same area
and a random box, and iterative refinement must cover more of each object.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from harness.api import StageContext
from harness.core.registry import import_entry
from harness_methods.contracam import ContraCAM
from harness.cam.infer import cam_batches, load_cam_model

RECIPE = Path(__file__).resolve().parents[2] / "methods" / "contracam" / "recipes" / "tiny.yaml"
SIDE = 48


def write_scenes(root: Path, n: int = 96, seed: int = 0) -> list[np.ndarray]:
    """``root/coco/train2017/<i>.jpg`` scenes; returns their object masks."""
    rng = np.random.default_rng(seed)
    folder = root / "coco" / "train2017"
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    masks = []
    for i in range(n):
        bg = 110 + rng.normal(0, 12, (SIDE, SIDE, 1)).repeat(3, axis=2)
        r = rng.uniform(0.16, 0.24) * SIDE
        cy, cx = rng.uniform(r, SIDE - r, 2)
        mask = (np.abs(yy - cy) + np.abs(xx - cx) < 1.3 * r) if i % 2 else ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r)
        stripes = (np.sin((xx * rng.uniform(-1, 1) + yy) * rng.uniform(0.6, 1.2)) > 0)[..., None]
        colour = rng.integers(0, 256, 3)
        obj = np.where(stripes, colour, 255 - colour)
        image = np.where(mask[..., None], obj, bg).clip(0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"{i:06d}.jpg", quality=95)
        masks.append(mask)
    return masks


def box_iou_with(masks: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> float:
    ious = []
    for m, (y0, x0, y1, x1) in zip(masks, boxes):
        b = np.zeros_like(m)
        b[y0:y1, x0:x1] = True
        ious.append((m & b).sum() / (m | b).sum())
    return float(np.mean(ious))


@pytest.mark.slow
def test_trained_model_cam_overlaps_objects_better_than_baselines(tmp_path):
    root = tmp_path / "data"
    gt = np.stack(write_scenes(root))
    cfg = yaml.safe_load(RECIPE.read_text())
    cfg.update(epochs=8, batch_size=32)
    cfg["data"] = {"dirs": ["coco/train2017"], "short_side": SIDE, "cache": True, "num_workers": 0}
    cfg["augment"].update(size=32, scale=[0.3, 1.0])
    cfg["loop"] = {"checkpoint_every": 0, "log_every": 4, "amp": False, "channels_last": False, "sync_bn": False}
    stage = ContraCAM().stages(cfg)[0]
    ctx = StageContext(name=stage.name, cfg=stage.view(copy.deepcopy(cfg)), workdir=tmp_path / "pretrain", data_root=root, seed=0,
                       device="cpu", preset="tiny", method="contracam", recipe="test", config_hash="trained-cam")
    ctx.workdir.mkdir()
    torch.manual_seed(0)
    import_entry(stage.run)(ctx)

    model = load_cam_model(ctx.workdir / "backbone.pth", expand_res=4)  # a 6x6 map at 48 px
    paths = sorted((root / "coco" / "train2017").glob("*.jpg"))
    masks = np.concatenate([b.masks for b in cam_batches(model, paths, SIDE, 32, 1)])
    # the CAM's top pixels, as many as the object has, against boxes of the object's area
    pred = [m >= np.sort(m.ravel())[-int(g.sum())] for m, g in zip(masks, gt)]
    cam_iou = float(np.mean([(p & g).sum() / (p | g).sum() for p, g in zip(pred, gt)]))
    inside = float(np.mean([m[g].mean() for m, g in zip(masks, gt)]))
    outside = float(np.mean([m[~g].mean() for m, g in zip(masks, gt)]))
    side = [int(round(np.sqrt(g.sum()))) for g in gt]
    centre = [((SIDE - s) // 2, (SIDE - s) // 2, (SIDE + s) // 2, (SIDE + s) // 2) for s in side]
    rng = np.random.default_rng(1)
    rand = []
    for s in side:
        y, x = rng.integers(0, SIDE - s + 1, 2)
        rand.append((y, x, y + s, x + s))
    print(f"CAM IoU {cam_iou:.3f}, centre box {box_iou_with(gt, centre):.3f}, random box "
          f"{box_iou_with(gt, rand):.3f}; CAM inside {inside:.2f} / outside {outside:.2f}")
    assert inside > 1.5 * outside
    assert cam_iou > box_iou_with(gt, centre) and cam_iou > box_iou_with(gt, rand)

    # refinement: more of each object is covered after 3 iterations than after 1 (with one
    # object per scene, what it adds once the object is covered is background: printed only)
    refined = np.concatenate([b.masks for b in cam_batches(model, paths, SIDE, 32, 3)])
    covered = [float(np.mean([(m >= 0.5)[g].mean() for m, g in zip(ms, gt)])) for ms in (masks, refined)]
    added = [(b >= 0.5) & ~(a >= 0.5) for a, b in zip(masks, refined)]
    on_object = sum(int((a & g).sum()) for a, g in zip(added, gt)) / max(1, sum(int(a.sum()) for a in added))
    print(f"object coverage T=1 {covered[0]:.3f}, T=3 {covered[1]:.3f}; added pixels on objects {on_object:.2f} "
          f"(objects cover {gt.mean():.2f} of the images)")
    assert covered[1] > covered[0] + 0.1
