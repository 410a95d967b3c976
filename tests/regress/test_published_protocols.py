"""Paper recipes and presets resolve to the published values of their papers and official
code (each with its source), read through the parsers the stages and tasks use."""
from __future__ import annotations

import pytest

from harness.core import registry
from harness.pretrain.augment import TwoViewBatch
from harness.pretrain.loop import LoopConfig
from harness.pretrain.optim import lr_at
from harness.pretrain.byol import BYOLModel

BYOL_PAPER = "Grill et al., NeurIPS 2020 (BYOL), Sec. 3.2 and App. B"
# (what, value in the paper, how the resolved recipe gives it)
BYOL_PUBLISHED = [
    ("optimiser", "lars", lambda r, loop, aug, m: loop.optim.name),
    ("peak lr = 0.2 x batch / 256 (batch 4096), reached after warm-up", 0.2 * 4096 / 256,
     lambda r, loop, aug, m: lr_at(loop.optim, 10 * 10, 10, r["epochs"], r["batch_size"])),  # 10 steps an epoch
    ("weight decay", 1.5e-6, lambda r, loop, aug, m: loop.optim.weight_decay),
    ("biases / BN excluded from LARS and decay", True, lambda r, loop, aug, m: loop.optim.exclude_bias_bn),
    ("warm-up epochs", 10, lambda r, loop, aug, m: loop.optim.warmup_epochs),
    ("lr schedule", "cosine", lambda r, loop, aug, m: loop.optim.schedule),
    ("blur probability, view 1 / view 2", (1.0, 0.1), lambda r, loop, aug, m: (aug[0].blur_p, aug[1].blur_p)),
    ("solarize probability, view 1 / view 2", (0.0, 0.2),
     lambda r, loop, aug, m: (aug[0].solarize_p, aug[1].solarize_p)),
    ("colour jitter (brightness, contrast, saturation, hue)", (0.4, 0.4, 0.2, 0.1),
     lambda r, loop, aug, m: tuple(aug[0].jitter)),
    ("colour jitter / grayscale probability", (0.8, 0.2), lambda r, loop, aug, m: (aug[1].jitter_p, aug[1].gray_p)),
    ("crop scale", (0.08, 1.0), lambda r, loop, aug, m: tuple(aug[0].scale)),
    ("projector / predictor widths", (4096, 256, 4096), lambda r, loop, aug, m: (m["hidden"], m["dim"], m["pred_hidden"])),
    ("target momentum, schedule", (0.996, "cosine"), lambda r, loop, aug, m: (m["momentum"], m["momentum_schedule"])),
]


@pytest.mark.parametrize("what,published,resolved", BYOL_PUBLISHED, ids=[w for w, _, _ in BYOL_PUBLISHED])
def test_byol_paper_recipe_is_the_byol_paper(what, published, resolved) -> None:
    recipe = registry.load_recipe("byol", "paper")
    loop = LoopConfig.from_recipe(recipe)
    aug = TwoViewBatch.from_cfg(recipe["augment"]).augs
    BYOLModel.from_cfg({**recipe, "arch": "resnet18"})  # the heads section parses
    value = resolved(recipe, loop, aug, recipe["byol"])
    assert value == pytest.approx(published), f"{what}: recipe gives {value}, {BYOL_PAPER} gives {published}"


def test_byol_as_contracam_runs_it_is_kept_as_its_own_recipe() -> None:
    recipe = registry.load_recipe("byol", "paper-contracam")
    loop = LoopConfig.from_recipe(recipe)
    assert loop.optim.name == "sgd" and recipe["note"] == "as in ContraCAM"
    assert recipe["byol"]["momentum_schedule"] == "constant"


CONTRACAM_SOURCE = "Mo et al., NeurIPS 2021, and alinlab/object-aware-contrastive (utils/gradcam.py, utils/box_utils.py)"
CONTRACAM_CAM = {  # the box pipeline of the object-aware crop, as the official code produced it
    "iterations": 10, "expand_res": 2, "crf": True, "threshold": 0.5, "min_area": 0.01, "margin": 0.2,
    "batch_size": 256, "numerator": "official", "binarize": "official", "contours": "tree",
}


def test_contracam_paper_boxes_follow_the_official_code() -> None:
    from harness_methods.contracam.recipe import CamConfig

    cam = CamConfig(**registry.load_recipe("contracam", "paper")["cam"]).check()
    resolved = {k: getattr(cam, k) for k in CONTRACAM_CAM}
    assert resolved == CONTRACAM_CAM, f"{CONTRACAM_SOURCE}: {CONTRACAM_CAM}, recipe: {resolved}"


def test_cam_localization_paper_preset_follows_the_official_code() -> None:
    from harness.core import config
    from harness.tasks.cam_localization import LocalizationConfig

    instance = config.suite_instances(config.load_suite("all"), "paper")["cam_localization"]
    cfg = LocalizationConfig.from_cfg({k: v for k, v in instance.items() if k not in ("task", "version")})
    assert (cfg.iterations, cfg.batch_size, cfg.crf, cfg.order, cfg.numerator, cfg.binarize) == \
        (10, 256, True, "official", "official", "official"), CONTRACAM_SOURCE


CONTRACAM_VAL = {"cub": 1000, "food": 0.1, "pets": 740, "cifar10": 5000, "cifar100": 5000, "flowers": 0.2}
# flowers: its official val split is used; val_size (the preset's 0.2) is then never read


def test_contracam_suite_probes_are_its_lineval() -> None:
    from harness.core import config
    from harness.tasks.probe import ProbeConfig

    instances = config.suite_instances(config.load_suite("contracam"), "paper")
    for dataset, val in CONTRACAM_VAL.items():
        cfg = instances[f"linear_probe.contracam.{dataset}"]
        probe = ProbeConfig.from_cfg(cfg)
        assert (cfg["dataset"], cfg["val_size"], probe.protocol, probe.refit, probe.metric) == \
            (dataset, val, "contracam", False, "top1"), CONTRACAM_SOURCE
        assert (len(probe.grid), probe.grid[0], probe.grid[-1]) == (45, pytest.approx(1e-6), pytest.approx(1e5))


def test_contracam_suite_shift_heads_and_crops_are_its_lineval() -> None:
    """Its data module: COCO-Crop 10,000 held-out train crops, IN-9 5 % of original/train,
    ImageNet-R-9 fitted on original/train and selected on original/val."""
    from harness.core import config
    from harness.tasks.probe import ProbeConfig

    instances = config.suite_instances(config.load_suite("contracam"), "paper")
    expected = {"coco_crop.contracam": ("val_size", 10000), "bg_shift.contracam": ("val_size", 0.05),
                "dist_shift.contracam": ("in9_val", "original_val")}
    for name, (key, value) in expected.items():
        probe = ProbeConfig.from_cfg(instances[name], "top1")
        assert (instances[name][key], probe.protocol, probe.refit) == (value, "contracam", False), CONTRACAM_SOURCE


MOCO_C4 = "facebookresearch/moco detection/configs/coco_R_50_C4_2x_moco.yaml over Base-RCNN-C4-BN.yaml"


def test_contracam_suite_detects_with_moco_mask_rcnn_c4_2x() -> None:
    from harness.core import config

    instances = config.suite_instances(config.load_suite("contracam"), "paper")
    assert "coco_det" not in instances
    c4 = instances["coco_det_c4"]
    assert (c4["config"], c4["iters"], c4["milestones"], c4["batch_size"], c4["lr"], c4["warmup_iters"],
            c4["precise_bn_iters"]) == ("benchmarks/mmdet/mask-rcnn_r50-c4_ms-2x_coco.py", 180000, [120000, 160000],
                                        16, 0.02, 1000, 200), MOCO_C4
    standard = config.suite_instances(config.load_suite("all"), "paper")
    assert standard["coco_det"]["config"] == "benchmarks/mmdet/mask-rcnn_r50_fpn_ms-1x_coco.py"  # the standard column
