"""RoI correspondence between the two views and the module views of a D3SSL batch."""
from __future__ import annotations

import copy

import pytest
import torch

from d3ssl_helpers import SIZE, raw_batch, small_cfg
from harness.core.errors import ConfigError
from harness.pretrain.augment import StepRNG
from harness_methods.d3ssl.views import D3SSLBatch, derangement, module_cfgs, select_rois


def test_select_rois_maps_boxes_into_both_views_and_mirrors_flips():
    meta = [{"boxes": [[0.25, 0.25, 0.75, 0.5]]}]
    whole = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    right_half = torch.tensor([[0.5, 0.0, 1.0, 1.0]])
    b1, b2, valid = select_rois(meta, whole, right_half, torch.tensor([False]), torch.tensor([True]),
                                (40, 20), StepRNG(0, 0), k=1, max_boxes=8, jitter=0.1)
    assert torch.allclose(b1[0, 0], torch.tensor([10.0, 10.0, 30.0, 20.0]))
    # in view 2 the box is clipped to [0.5, 0.75] of the width -> [0, 10] px, then mirrored -> [10, 20]
    assert torch.allclose(b2[0, 0], torch.tensor([10.0, 5.0, 20.0, 10.0]))
    assert valid.all()


def test_select_rois_pads_with_jittered_copies_and_falls_back_to_the_overlap():
    whole = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    no = torch.tensor([False])
    b1, _, _ = select_rois([{"boxes": [[0.2, 0.2, 0.6, 0.6]]}], whole, whole, no, no, (50, 50), StepRNG(0, 1),
                           k=4, max_boxes=8, jitter=0.1)
    assert torch.allclose(b1[0, 0], torch.tensor([10.0, 10.0, 30.0, 30.0]))
    assert not torch.allclose(b1[0, 1], b1[0, 0])  # padded copies are jittered
    assert ((b1[0, 1:] - b1[0, :1]).abs() <= 0.1 * 20 * 2 + 1e-4).all()
    b1, b2, valid = select_rois([{"boxes": []}], whole, torch.tensor([[0.5, 0.5, 1.0, 1.0]]), no, no, (50, 50),
                                StepRNG(0, 2), k=2, max_boxes=8, jitter=0.0)
    assert torch.allclose(b1[0, 0], torch.tensor([25.0, 25.0, 50.0, 50.0]))
    assert torch.allclose(b2[0, 0], torch.tensor([0.0, 0.0, 50.0, 50.0]))
    assert valid.all()


def test_derangement_has_no_fixed_point():
    for seed in range(10):
        p = derangement(7, torch.Generator().manual_seed(seed))
        assert sorted(p.tolist()) == list(range(7)) and not (p == torch.arange(7)).any()


def test_batch_has_the_module_views_with_subsets_and_targets():
    cfg = small_cfg()
    batch = D3SSLBatch(cfg)(raw_batch(4), StepRNG(0, 0))
    assert batch["x1"].shape == (4, 3, SIZE, SIZE) and batch["boxes1"].shape == (4, 3, 4)
    dc, dp = batch["modules"]["decoupling"], batch["modules"]["depositioning"]
    assert [v["targets"] for v in dc] == [("x2",), ("x1",)]
    assert dc[1]["images"].shape == (2, 3, 24, 24) and dc[1]["scale"] == 0.5  # small view on a 0.75 canvas
    assert dp[0]["images"].shape == (2, 3, SIZE, SIZE) and dp[0]["targets"] == ("x1", "x2")
    for v in dc + dp:
        assert len(v["index"]) == 2 and v["boxes"].shape == (2, 3, 4)


def test_batch_is_deterministic_per_step():
    cfg = small_cfg()
    a = D3SSLBatch(cfg)(raw_batch(4), StepRNG(3, 5))
    b = D3SSLBatch(cfg)(raw_batch(4), StepRNG(3, 5))
    c = D3SSLBatch(cfg)(raw_batch(4), StepRNG(3, 6))
    assert torch.equal(a["modules"]["depositioning"][0]["images"], b["modules"]["depositioning"][0]["images"])
    assert not torch.equal(a["x2"], c["x2"])


def test_module_config_errors_are_clear():
    cfg = small_cfg()
    cfg["decoupling"]["views"] = [{"source": "x3", "cutout": True}]
    with pytest.raises(ConfigError, match="decoupling.views"):
        module_cfgs(cfg)
    cfg = small_cfg()
    cfg["depositioning"]["views"] = [{"source": "x1"}]
    with pytest.raises(ConfigError, match="no region augmentation"):
        module_cfgs(cfg)
    cfg = small_cfg()
    cfg["cutout"]["ratios"] = [0.1, 0.2]
    with pytest.raises(ConfigError, match="unknown key.*'cutout'"):
        D3SSLBatch(cfg)
    cfg = copy.deepcopy(small_cfg())
    cfg["decoupling"]["enabled"] = False
    cfg["depositioning"]["enabled"] = False
    assert module_cfgs(cfg) == []


@pytest.mark.parametrize("fill", ["other_image", "mean"])
def test_decoupling_holes_show_another_image_or_the_mean_colour(fill):
    cfg = small_cfg()
    cfg["cutout"]["fill"] = fill
    batch = D3SSLBatch(cfg)(raw_batch(4), StepRNG(0, 0))
    view = batch["modules"]["decoupling"][0]  # x1 with cut-outs, no background replacement
    for row, i in enumerate(view["index"].tolist()):
        hole = (view["images"][row] != batch["x1"][i]).any(dim=0)
        assert hole.any()
        shown = view["images"][row][:, hole]
        if fill == "mean":
            assert torch.equal(shown, torch.zeros_like(shown))
        else:  # the same pixels of one other image of the batch
            assert any(torch.equal(shown, batch["x1"][j][:, hole]) for j in range(4) if j != i)


def test_unknown_cutout_fill_is_refused():
    cfg = small_cfg()
    cfg["cutout"]["fill"] = "noise"
    with pytest.raises(ConfigError, match="cutout.fill"):
        D3SSLBatch(cfg)
