"""D3SSL's model against a plain re-implementation on a tiny ResNet-18: RoI pooling (C4
and C5, small views), the symmetric base loss, the de-coupling / de-positioning terms
and their weights, stop-gradient, the EMA teacher, the recipes and the exported trunk."""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn as nn
import yaml
from PIL import Image
from torchvision.ops import roi_align

from d3ssl_helpers import raw_batch
from harness.pretrain.augment import StepRNG
from harness_methods.d3ssl.losses import combine, roi_byol_loss
from harness_methods.d3ssl.model import D3SSLModel, RoIEncoder, cosine_momentum, rois_from_boxes
from harness_methods.d3ssl.views import D3SSLBatch, module_cfgs

RECIPES = Path(__file__).resolve().parents[2] / "methods" / "d3ssl" / "recipes"
S = 64  # view side: a 4x4 C4 map, a 2x2 C5 map
K = 3
W_DC, W_DP = 0.3, 0.7
MOMENTUM = 0.9


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model_cfg(level: str = "c4") -> dict[str, Any]:
    return {"model": {"arch": "resnet18", "hidden_dim": 32, "proj_dim": 16, "momentum": MOMENTUM},
            "roi": {"level": level, "size": 4, "per_image": K},
            "decoupling": {"enabled": True, "weight": W_DC, "sample_ratio": 0.5,
                           "views": [{"source": "x1", "cutout": True, "targets": ["x2"]},
                                     {"source": "x2", "cutout": True, "small": True, "targets": ["x1"]}]},
            "depositioning": {"enabled": True, "weight": W_DP, "sample_ratio": 0.5,
                              "views": [{"source": "x2", "background": "moved", "targets": ["x1", "x2"]}]}}


def perturbed(model: D3SSLModel, seed: int = 1) -> D3SSLModel:
    """The model with its student moved away from the teacher (as after some training)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in [*model.encoder.parameters(), *model.projector.parameters(), *model.predictor.parameters()]:
            p.add_(torch.randn(p.shape, generator=g) * (0.2 * p.abs().mean() + 0.02))
    return model


@pytest.fixture(scope="module")
def base_model() -> D3SSLModel:
    torch.manual_seed(0)
    return perturbed(D3SSLModel(model_cfg()))


# ------------------------------------------------------------------ plain reference


def _cos_loss(p: torch.Tensor, z: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``2 - 2 cos`` over the valid rows (0 when none)."""
    rows = [2 - 2 * (p[i] @ z[i]) / (p[i].norm() * z[i].norm()) for i in range(len(p)) if bool(valid[i])]
    return torch.stack(rows).mean() if rows else torch.tensor(0.0)


def ref_roi_features(trunk: nn.Module, images: torch.Tensor, boxes: torch.Tensor, level: str, size: int,
                     scale: float = 1.0) -> torch.Tensor:
    """RoIAlign (aligned, per-image box lists) on layer3 (stride 16, then layer4) or on
    layer4 (stride 32), averaged over the cells: ``(B*K, C)``."""
    x = images
    for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3"):
        x = getattr(trunk, name)(x)
    if level == "c5":
        x = trunk.layer4(x)
    cells = max(1, round(size * scale))
    f = roi_align(x, [b.float() for b in boxes], output_size=(cells, cells),
                  spatial_scale=1 / (16 if level == "c4" else 32), sampling_ratio=-1, aligned=True)
    if level == "c4":
        f = trunk.layer4(f)
    return f.mean(dim=(2, 3))


@dataclass
class Reference:
    base: torch.Tensor
    terms: dict[str, torch.Tensor]
    loss: torch.Tensor
    alt: dict[str, tuple[torch.Tensor, torch.Tensor]]  # misreading -> (its value, the right value)


@torch.no_grad()
def reference(model: D3SSLModel, batch: dict[str, Any], level: str = "c4", size: int = 4,
              weights: tuple[float, float] = (W_DC, W_DP)) -> Reference:
    def student(x: torch.Tensor, b: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return model.predictor(model.projector(ref_roi_features(model.encoder.trunk, x, b, level, size, scale)))

    def teacher(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return model.teacher_projector(ref_roi_features(model.teacher_encoder.trunk, x, b, level, size))

    bsz, k = batch["valid"].shape
    t = {"x1": teacher(batch["x1"], batch["boxes1"]), "x2": teacher(batch["x2"], batch["boxes2"])}
    s1, s2 = student(batch["x1"], batch["boxes1"]), student(batch["x2"], batch["boxes2"])
    v = batch["valid"].reshape(-1)
    base = (_cos_loss(s1, t["x2"], v) + _cos_loss(s2, t["x1"], v)) / 2

    def module_term(views: list[dict[str, Any]], indexed: bool = True, scaled: bool = True,
                    reduce: str = "mean") -> torch.Tensor:
        """Mean over the views of the mean over the targets; each RoI of a view regresses
        onto the teacher's same RoI (its image's rows) of the target view."""
        per_view = []
        for view in views:
            pred = student(view["images"], view["boxes"], view["scale"] if scaled else 1.0)
            n = len(view["index"])
            rows = (torch.cat([torch.arange(i * k, (i + 1) * k) for i in view["index"].tolist()]) if indexed
                    else torch.arange(n * k))
            losses = torch.stack([_cos_loss(pred, t[name][rows], view["valid"].reshape(-1))
                                  for name in view["targets"]])
            per_view.append(losses.mean() if reduce == "mean" else losses.sum())
        return torch.stack(per_view).mean()

    terms = {m: module_term(views) for m, views in batch["modules"].items()}
    w = dict(zip(("decoupling", "depositioning"), weights))
    loss = base + sum(w[m] * terms[m] for m in terms)
    swap = {"decoupling": "depositioning", "depositioning": "decoupling"}
    alt = {"same-view base": ((_cos_loss(s1, t["x1"], v) + _cos_loss(s2, t["x2"], v)) / 2, base),
           "one-direction base": (_cos_loss(s1, t["x2"], v), base),
           "weights swapped": (base + sum(w[swap[m]] * terms[m] for m in terms), loss)}
    for m, views in batch["modules"].items():
        alt[f"{m}: rows not indexed"] = (module_term(views, indexed=False), terms[m])
        if any(view["scale"] != 1.0 for view in views):
            alt[f"{m}: small view at full RoI size"] = (module_term(views, scaled=False), terms[m])
        if any(len(view["targets"]) > 1 for view in views):
            alt[f"{m}: targets summed"] = (module_term(views, reduce="sum"), terms[m])
    return Reference(base, terms, loss, alt)


def hand_batch(seed: int = 3, bsz: int = 4) -> dict[str, Any]:
    """Two random views with random boxes (some invalid) and module views built by hand:
    one plain, one small (half size, on a smaller canvas), one with two targets."""
    g = torch.Generator().manual_seed(seed)

    def boxes(n: int, side: int) -> torch.Tensor:
        xy = torch.rand(n, K, 2, generator=g) * side * 0.6
        wh = torch.rand(n, K, 2, generator=g) * side * 0.35 + side * 0.08
        return torch.cat([xy, (xy + wh).clamp(max=side)], dim=-1)

    def images(n: int, side: int) -> torch.Tensor:
        return torch.randn(n, 3, side, side, generator=g)

    valid = torch.ones(bsz, K, dtype=torch.bool)
    valid[1, 2] = valid[3, 0] = False

    def view(idx: list[int], side: int, scale: float, targets: tuple[str, ...]) -> dict[str, Any]:
        index = torch.tensor(idx)
        return {"images": images(len(idx), side), "boxes": boxes(len(idx), side), "valid": valid[index],
                "index": index, "scale": scale, "targets": targets}

    return {"x1": images(bsz, S), "x2": images(bsz, S), "boxes1": boxes(bsz, S), "boxes2": boxes(bsz, S),
            "valid": valid,
            "modules": {"decoupling": [view([1, 3], S, 1.0, ("x2",)), view([0, 3], 48, 0.5, ("x1",))],
                        "depositioning": [view([2, 3], S, 1.0, ("x1", "x2"))]}}


def _check(out: dict[str, torch.Tensor], ref: Reference) -> None:
    assert out["loss_base"].item() == pytest.approx(ref.base.item(), rel=1e-4, abs=1e-6)
    for m, value in ref.terms.items():
        assert out[f"loss_{m}"].item() == pytest.approx(value.item(), rel=1e-4, abs=1e-6), m
    assert out["loss"].item() == pytest.approx(ref.loss.item(), rel=1e-4, abs=1e-6)


# ------------------------------------------------------------------ losses


def test_roi_byol_loss_is_two_minus_two_cos_over_valid_rows() -> None:
    g = torch.Generator().manual_seed(0)
    p, z = torch.randn(7, 5, generator=g) * 3, torch.randn(7, 5, generator=g) * 0.5
    valid = torch.tensor([True, False, True, True, False, True, False])
    assert roi_byol_loss(p, z, valid).item() == pytest.approx(_cos_loss(p, z, valid).item(), rel=1e-6)
    assert roi_byol_loss(p, z, torch.ones(7, dtype=torch.bool)).item() == pytest.approx(
        _cos_loss(p, z, torch.ones(7, dtype=torch.bool)).item(), rel=1e-6)


def test_roi_byol_loss_passes_no_gradient_to_the_target() -> None:
    g = torch.Generator().manual_seed(1)
    p = torch.randn(4, 6, generator=g).requires_grad_()
    z = torch.randn(4, 6, generator=g).requires_grad_()
    roi_byol_loss(p, z, torch.ones(4, dtype=torch.bool)).backward()
    assert z.grad is None and p.grad is not None and p.grad.abs().sum() > 0


def test_combine_is_the_weighted_sum_with_unlisted_terms_counted_once() -> None:
    terms = {"base": torch.tensor(2.0), "decoupling": torch.tensor(3.0), "depositioning": torch.tensor(5.0)}
    assert combine(terms, {"decoupling": 0.5, "depositioning": 0.1}).item() == pytest.approx(2 + 1.5 + 0.5)
    assert combine(terms, {"base": 1.0, "decoupling": 0.0, "depositioning": 2.0}).item() == pytest.approx(12.0)


# ------------------------------------------------------------------ RoI encoder


def test_rois_from_boxes_numbers_the_images_box_by_box() -> None:
    boxes = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    rois = rois_from_boxes(boxes)
    assert rois[:, 0].tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.equal(rois[:, 1:], boxes.reshape(6, 4))


@pytest.mark.parametrize("level,scale", [("c4", 1.0), ("c4", 0.5), ("c5", 1.0), ("c5", 0.5)])
def test_roi_encoder_matches_a_plain_roi_align(level: str, scale: float) -> None:
    torch.manual_seed(0)
    enc = RoIEncoder("resnet18", level=level, roi_size=4).eval()
    batch = hand_batch()
    got = enc(batch["x1"], batch["boxes1"], scale)
    want = ref_roi_features(enc.trunk, batch["x1"], batch["boxes1"], level, 4, scale)
    assert got.shape == (4 * K, 512)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4)


def test_roi_features_follow_the_x1_y1_x2_y2_box_order() -> None:
    """A box over the bright left half and one over the dark right half pool differently;
    the same numbers read as ``(y1, x1, y2, x2)`` would pool the same region twice."""
    torch.manual_seed(0)
    enc = RoIEncoder("resnet18", level="c4", roi_size=4).eval()
    img = torch.zeros(1, 3, S, S)
    img[..., : S // 2] = 2.0
    left = torch.tensor([[[0.0, 0.0, 32.0, 64.0], [32.0, 0.0, 64.0, 64.0], [0.0, 0.0, 64.0, 32.0]]])
    feats = enc(img, left)
    want = ref_roi_features(enc.trunk, img, left, "c4", 4)
    assert torch.allclose(feats, want, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(feats[0], feats[1], atol=1e-3)


# ------------------------------------------------------------------ model forward


def test_forward_matches_a_plain_reimplementation(base_model: D3SSLModel) -> None:
    model = copy.deepcopy(base_model)
    batch = hand_batch()
    ref = reference(model, batch)
    out = model(batch)
    _check(out, ref)
    assert set(out) == {"loss", "loss_base", "loss_decoupling", "loss_depositioning"}
    assert out["loss"].requires_grad
    # the input tells the plausible misreadings apart
    assert len(ref.alt) == 7
    for name, (value, right) in ref.alt.items():
        assert abs(value.item() - right.item()) > 1e-4, name


def test_forward_on_the_c5_level_matches_the_reference() -> None:
    torch.manual_seed(0)
    model = perturbed(D3SSLModel(model_cfg("c5")))
    batch = hand_batch(4)
    _check(model(batch), reference(model, batch, level="c5"))


def test_forward_on_a_real_batch_matches_the_reference(base_model: D3SSLModel) -> None:
    """The views built by :class:`D3SSLBatch` (cut-outs, small view, moved background) go
    through the model as the reference reads them."""
    cfg = {**model_cfg(), "augment": {"blur_kernel": 3, "view1": {"size": S, "scale": [1.0, 1.0],
                                                                   "ratio": [0.1, 10.0]},
                                      "view2": {"size": S, "scale": [0.6, 1.0]}},
           "cutout": {"mode": "rcc", "ratio": [0.2, 0.6]}, "small_view": {"scale": 0.5, "canvas": 0.75},
           "base_cutout": {"prob": 0.5, "ratio": [0.1, 0.3]}}
    batch = D3SSLBatch(cfg)(raw_batch(4), StepRNG(0, 1))
    assert {m: [v["scale"] for v in views] for m, views in batch["modules"].items()} == \
        {"decoupling": [1.0, 0.5], "depositioning": [1.0]}
    model = copy.deepcopy(base_model)
    _check(model(batch), reference(model, batch))


def test_weights_come_from_the_recipe_and_only_enabled_modules_count(base_model: D3SSLModel) -> None:
    assert base_model.weights == {"base": 1.0, "decoupling": W_DC, "depositioning": W_DP}
    model = copy.deepcopy(base_model)
    batch = hand_batch()
    batch["modules"] = {"depositioning": batch["modules"]["depositioning"]}
    ref = reference(model, batch)
    out = model(batch)
    assert set(out) == {"loss", "loss_base", "loss_depositioning"}
    assert out["loss"].item() == pytest.approx(ref.base.item() + W_DP * ref.terms["depositioning"].item(), rel=1e-4)
    batch["modules"] = {}
    assert model(batch)["loss"].item() == pytest.approx(ref.base.item(), rel=1e-4)


def test_gradients_reach_the_student_only(base_model: D3SSLModel) -> None:
    model = copy.deepcopy(base_model)
    model(hand_batch())["loss"].backward()
    for part in (model.teacher_encoder, model.teacher_projector):
        assert all(not p.requires_grad and p.grad is None for p in part.parameters())
    for part in (model.encoder, model.projector, model.predictor):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


# ------------------------------------------------------------------ teacher


def test_cosine_momentum_formula() -> None:
    for step, total in ((0, 10), (3, 10), (7, 10), (10, 10), (15, 10)):
        want = 1 - (1 - 0.99) * (math.cos(math.pi * min(step, total) / total) + 1) / 2
        assert cosine_momentum(0.99, step, total) == pytest.approx(want, abs=1e-12)
    assert cosine_momentum(0.99, 5, 0) == 0.99


def test_teacher_starts_as_a_copy_of_the_student() -> None:
    torch.manual_seed(0)
    model = D3SSLModel(model_cfg())
    for t, s in ((model.teacher_encoder, model.encoder), (model.teacher_projector, model.projector)):
        a, b = t.state_dict(), s.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


@pytest.mark.parametrize("step,total", [(3, 10), (10, 10)])
def test_after_step_moves_the_whole_teacher_by_the_cosine_momentum(base_model: D3SSLModel, step: int,
                                                                   total: int) -> None:
    model = copy.deepcopy(base_model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    m = 1 - (1 - MOMENTUM) * (math.cos(math.pi * step / total) + 1) / 2
    assert model.after_step(step, total) == pytest.approx(m)
    assert model.momentum == pytest.approx(m)
    params = dict(model.named_parameters())
    frozen = {n for n, p in params.items() if not p.requires_grad}
    covered = set()
    for t_name, s_name in (("teacher_encoder", "encoder"), ("teacher_projector", "projector")):
        for name, p in getattr(model, t_name).named_parameters():
            covered.add(f"{t_name}.{name}")
            want = m * before[f"{t_name}.{name}"] + (1 - m) * before[f"{s_name}.{name}"]
            assert torch.allclose(p, want, atol=1e-6), f"{t_name}.{name}"
            if m < 1:
                assert not torch.allclose(p, before[f"{t_name}.{name}"]), f"{t_name}.{name}"
    assert covered == frozen
    for n in set(params) - frozen:
        assert torch.equal(params[n], before[n]), n


# ------------------------------------------------------------------ recipes


@pytest.mark.parametrize("name", ["tiny", "paper", "tiny-base", "paper-base"])
def test_recipes_build_the_documented_model_and_modules(name: str) -> None:
    cfg = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
    with torch.device("meta"):
        model = D3SSLModel(cfg)
    assert model.weights == {"base": 1.0, "decoupling": 0.3, "depositioning": 0.3}
    assert model.base_momentum == 0.99 and model.encoder.level == "c4"
    assert model.encoder.roi_size == (14 if name.startswith("paper") else 4)
    batch_fn = D3SSLBatch(cfg)
    assert (batch_fn.k, batch_fn.jitter, batch_fn.small_scale, batch_fn.small_canvas) == (4, 0.1, 0.5, 0.75)
    assert batch_fn.base_cutout == {"prob": 0.5, "ratio": [0.1, 0.3]}
    assert (batch_fn.cutout["mode"], batch_fn.cutout["ratio"], batch_fn.cutout_fill) == ("rcc", [0.2, 0.6],
                                                                                         "other_image")
    mods = {m.name: m for m in module_cfgs(cfg)}
    if name.endswith("-base"):
        assert mods == {}
        return
    dc, dp = mods["decoupling"], mods["depositioning"]
    assert (dc.weight, dc.sample_ratio, dc.invert_half) == (0.3, 0.25, True)
    assert (dp.weight, dp.sample_ratio, dp.invert_half) == (0.3, 0.25, False)
    assert [(v.source, v.cutout, v.background, v.small, v.targets) for v in dc.views] == \
        [("x1", True, "none", False, ("x2",)), ("x2", True, "none", True, ("x1",))]
    assert [(v.source, v.cutout, v.background, v.small, v.targets) for v in dp.views] == \
        [("x2", True, "moved", False, ("x1", "x2"))]


def test_module_settings_are_read_per_module() -> None:
    cfg = model_cfg()
    cfg["decoupling"].update(invert_half=False, sample_ratio=0.4)
    cfg["depositioning"].update(invert_half=True, sample_ratio=0.6)
    mods = {m.name: m for m in module_cfgs(cfg)}
    assert (mods["decoupling"].weight, mods["decoupling"].sample_ratio, mods["decoupling"].invert_half) == \
        (W_DC, 0.4, False)
    assert (mods["depositioning"].weight, mods["depositioning"].sample_ratio, mods["depositioning"].invert_half) == \
        (W_DP, 0.6, True)
    cfg["decoupling"]["enabled"] = False
    assert [m.name for m in module_cfgs(cfg)] == ["depositioning"]


# ------------------------------------------------------------------ stage 2 export


def test_pretrain_stage_exports_the_student_trunk_and_heads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop is replaced by a stand-in that moves the student; what is written must be
    the student, and the loop must see the proposal boxes of each image."""
    import harness.pretrain.loop as loop
    from harness.api import StageContext
    from harness.core.checkpoints import load_backbone
    from harness.core.heads import load_heads
    from harness_methods.d3ssl.stages.pretrain import run_pretrain

    root = tmp_path / "data"
    folder = root / "coco" / "train2017"
    folder.mkdir(parents=True)
    boxes = {}
    for i in range(2):
        name = f"{i + 1:012d}.jpg"
        Image.fromarray(np.full((40, 56, 3), 60 * i, dtype=np.uint8)).save(folder / name)
        boxes[f"coco/train2017/{name}"] = [[0.1 * (i + 1), 0.2, 0.6, 0.9]]
    (tmp_path / "proposals").mkdir()
    (tmp_path / "proposals" / "proposals.json").write_text(json.dumps({"source": "annotations", "boxes": boxes}))
    cfg = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    cfg["model"].update(hidden_dim=32, proj_dim=16)
    cfg["data"]["short_side"] = 32
    seen: dict[str, Any] = {}

    def fake_train(ctx: Any, model: D3SSLModel, data: Any, loop_cfg: Any, batch_fn: Any) -> dict[str, Any]:
        seen["model"] = perturbed(model, 5)
        seen["meta"] = [data[i]["meta"] for i in range(len(data))]
        seen["batch_fn"] = batch_fn
        return {"steps": 0}

    monkeypatch.setattr(loop, "train", fake_train)
    ctx = StageContext(name="pretrain", cfg=cfg, workdir=tmp_path / "pretrain", data_root=root, seed=0, device="cpu",
                       preset="tiny", method="d3ssl", recipe="tiny", config_hash="x",
                       upstream={"proposals": tmp_path / "proposals"})
    summary = run_pretrain(ctx)
    assert summary["modules"] == "decoupling,depositioning"
    model = seen["model"]
    assert len(seen["meta"]) == 2
    for meta, want in zip(seen["meta"], boxes.values()):
        assert np.allclose(meta["boxes"], want)
    assert isinstance(seen["batch_fn"], D3SSLBatch)
    net = load_backbone(tmp_path / "pretrain" / "backbone.pth")
    student = model.encoder.trunk.state_dict()
    teacher = model.teacher_encoder.trunk.state_dict()
    assert all(torch.equal(v, student[k]) for k, v in net.state_dict().items())
    assert not all(torch.equal(v, teacher[k]) for k, v in net.state_dict().items())
    heads = load_heads(tmp_path / "pretrain")
    assert set(heads) == {"projector", "predictor"}
    for name in ("projector", "predictor"):
        want = getattr(model, name).state_dict()
        assert all(torch.equal(v, want[k]) for k, v in heads[name].state_dict().items()), name
