"""The contracam method: stage plans, and the stages end to end at toy scale."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml

from harness.api import StageContext
from harness.core.checkpoints import load_backbone
from harness.core.heads import load_heads
from harness.core.errors import ConfigError, DataError
from harness_methods.contracam import ContraCAM
from harness.cam.boxes import load_boxes, load_mask, mask_path

RECIPES = Path(__file__).resolve().parents[2] / "methods" / "contracam" / "recipes"


def toy_recipe(variant: str = "crop+bgmix", base: str = "mocov2") -> dict:
    cfg = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    cfg.update(variant=variant, base=base, epochs=1, batch_size=8)
    cfg["data"] = {"dirs": ["coco/train2017"], "short_side": 48, "cache": True, "num_workers": 0}
    cfg["augment"]["size"] = 32
    cfg["moco"]["queue"] = 16
    cfg["byol"].update(hidden=64, pred_hidden=64, dim=32)
    cfg["loop"] = {"checkpoint_every": 1, "log_every": 1, "amp": False, "channels_last": False, "sync_bn": False}
    cfg["cam"].update(image_size=32, batch_size=4, chunk=8, iterations=2)
    cfg["bgmix"]["aug_prob"] = 1.0
    return cfg


def run_stage(stage, cfg: dict, root: Path, work: Path, upstream: dict[str, Path]) -> dict:
    from harness.core.registry import import_entry

    ctx = StageContext(name=stage.name, cfg=stage.view(copy.deepcopy(cfg)), workdir=work / stage.name, data_root=root, seed=0,
                       device="cpu", preset="tiny", method="contracam", recipe="toy", upstream=dict(upstream),
                       config_hash="test")
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    return import_entry(stage.run)(ctx)


def run_all(cfg: dict, root: Path, work: Path) -> dict[str, dict]:
    out, upstream = {}, {}
    for stage in ContraCAM().stages(cfg):
        out[stage.name] = run_stage(stage, cfg, root, work, upstream)
        upstream[stage.name] = work / stage.name
    return out


@pytest.mark.parametrize("variant,names", [
    ("crop", ["pretrain", "cam_boxes", "objaware_pretrain"]),
    ("bgmix", ["pretrain", "cam_boxes", "objaware_pretrain"]),
    ("crop+bgmix", ["pretrain", "cam_boxes", "objaware_pretrain"]),
    ("oracle", ["gt_boxes", "objaware_pretrain"]),
    ("mixup", ["objaware_pretrain"]),
])
def test_stage_plans(variant, names):
    stages = ContraCAM().stages(toy_recipe(variant))
    assert [s.name for s in stages] == names
    assert [s.exports_backbone for s in stages] == [False] * (len(names) - 1) + [True]


def test_recipes_resolve_and_bad_keys_fail():
    for path in RECIPES.glob("*.yaml"):
        cfg = yaml.safe_load(path.read_text())
        assert {"pretrain_data", "epochs"} <= set(cfg), path
        assert ContraCAM().stages(cfg)[-1].exports_backbone
    with pytest.raises(ConfigError, match="variant"):
        ContraCAM().stages({**toy_recipe(), "variant": "crops"})
    with pytest.raises(ConfigError, match="cam"):
        ContraCAM().stages({**toy_recipe(), "cam": {"iteration": 3}})
    with pytest.raises(ConfigError, match="multiple"):
        ContraCAM().stages({**toy_recipe(), "cam": {"batch_size": 3, "chunk": 8}})


def test_crop_and_bgmix_pipeline_end_to_end_and_resume(contracam_root, tmp_path):
    cfg = toy_recipe("crop+bgmix")
    out = run_all(cfg, contracam_root, tmp_path)
    cam_dir = tmp_path / "cam_boxes"
    boxes = load_boxes(cam_dir / "boxes.json")
    images = sorted((contracam_root / "coco" / "train2017").glob("*.jpg"))
    assert sorted(boxes) == [f"coco/train2017/{p.name}" for p in images]
    assert out["cam_boxes"]["images"] == len(images)
    assert any(boxes.values())
    mask = load_mask(mask_path(cam_dir / "masks", next(iter(boxes))))
    assert mask.shape == (32, 32) and mask.max() == pytest.approx(1.0, abs=1 / 255)
    final = tmp_path / "objaware_pretrain"
    net = load_backbone(final / "backbone.pth")
    assert isinstance(net.fc, torch.nn.Identity)
    assert "projector" in load_heads(final / "heads.pth")
    assert json.loads((final / "backbone.json").read_text())["method"] == "contracam"
    assert out["objaware_pretrain"]["steps"] == len(images) // 8
    # resume: completed chunks are not recomputed; a lost merged file is rebuilt identically
    chunk = cam_dir / "chunks" / "boxes-00000.json"
    stamp = chunk.stat().st_mtime_ns
    (cam_dir / "boxes.json").unlink()
    run_stage(ContraCAM().stages(cfg)[1], cfg, contracam_root, tmp_path, {"pretrain": tmp_path / "pretrain"})
    assert chunk.stat().st_mtime_ns == stamp
    assert load_boxes(cam_dir / "boxes.json") == boxes


def test_objaware_stage_rejects_boxes_of_other_images(contracam_root, tmp_path):
    cfg = toy_recipe("crop")
    (tmp_path / "cam_boxes").mkdir()
    from harness.cam.boxes import save_boxes

    save_boxes(tmp_path / "cam_boxes" / "boxes.json", {"other.jpg": []})
    stage = ContraCAM().stages(cfg)[-1]
    with pytest.raises(DataError, match="no boxes"):
        run_stage(stage, cfg, contracam_root, tmp_path, {"cam_boxes": tmp_path / "cam_boxes"})


def test_oracle_boxes_come_from_the_coco_json(contracam_root, tmp_path):
    cfg = toy_recipe("oracle")
    stage = ContraCAM().stages(cfg)[0]
    out = run_stage(stage, cfg, contracam_root, tmp_path, {})
    boxes = load_boxes(tmp_path / "gt_boxes" / "boxes.json")
    ann = json.loads((contracam_root / "coco" / "annotations" / "instances_train2017.json").read_text())
    assert len(boxes) == len(ann["images"]) == out["images"]
    img = ann["images"][0]
    anns = [a for a in ann["annotations"] if a["image_id"] == img["id"] and a["area"] > 0.01 * img["width"] * img["height"]]
    assert len(boxes[f"coco/train2017/{img['file_name']}"]) == len(anns)


@pytest.mark.parametrize("variant,base", [("mixup", "mocov2"), ("cutmix", "byol")])
def test_mixing_baselines_train(contracam_root, tmp_path, variant, base):
    out = run_all(toy_recipe(variant, base), contracam_root, tmp_path)
    assert torch.isfinite(torch.tensor(out["objaware_pretrain"]["loss"]))


def test_base_recipe_strips_method_keys_and_merges_second_stage_overrides():
    from harness_methods.contracam.recipe import base_recipe

    cfg = {**toy_recipe(), "objaware": {"epochs": 3, "data": {"short_side": 40}}, "vanilla": {"epochs": 2}}
    first, second = base_recipe(cfg), base_recipe(cfg, second_stage=True)
    assert not {"base", "variant", "cam", "bgmix", "mix", "oracle", "objaware", "vanilla"} & (set(first) | set(second))
    assert first["epochs"] == 2 and second["epochs"] == 3 and first["data"] == cfg["data"]
    assert second["data"] == {**cfg["data"], "short_side": 40}
