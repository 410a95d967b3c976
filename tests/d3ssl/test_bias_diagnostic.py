"""The bias_diagnostic task: its metrics on constructed features, its scenes, and a run."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from harness.api import TaskContext
from harness.core.checkpoints import save_backbone
from harness.core.errors import ConfigError
from harness.tasks.bias_diagnostic import (BiasDiagnostic, DiagnosticCfg, coupling_scenes, coupling_score,
                                           position_decodability, position_scenes)

SMALL = {"image_size": 48, "coupling_objects": 4, "contexts": 3, "position_objects": 40, "roi_size": 3,
         "batch_size": 32}


def test_coupling_score_is_zero_for_context_free_features_and_grows_with_context():
    rng = np.random.default_rng(0)
    obj = rng.normal(size=(5, 1, 16))
    same = np.repeat(obj, 4, axis=1).reshape(20, 16)
    assert coupling_score(same, 4) == pytest.approx(0.0, abs=1e-12)
    noisy = (np.repeat(obj, 4, axis=1) + 0.5 * rng.normal(size=(5, 4, 16))).reshape(20, 16)
    noisier = (np.repeat(obj, 4, axis=1) + 2.0 * rng.normal(size=(5, 4, 16))).reshape(20, 16)
    assert 0 < coupling_score(noisy, 4) < coupling_score(noisier, 4)


def test_position_decodability_separates_linear_codes_from_noise():
    rng = np.random.default_rng(1)
    pos = rng.uniform(size=(200, 2))
    mix = rng.normal(size=(2, 32))
    coded = pos @ mix + 0.01 * rng.normal(size=(200, 32))
    r2, _ = position_decodability(coded, pos, 0.3, (0.01, 1.0, 100.0))
    assert r2 > 0.95
    r2_noise, _ = position_decodability(rng.normal(size=(200, 32)), pos, 0.3, (0.01, 1.0, 100.0, 1e4))
    assert r2_noise < 0.2


def test_scenes_keep_the_object_in_place_and_positions_uniform():
    cfg = DiagnosticCfg.from_cfg(SMALL)
    bg_set, nb_set = coupling_scenes(cfg)
    assert len(bg_set.images) == len(nb_set.images) == 4 * 3
    for s in (bg_set, nb_set):
        for i in range(4):
            group = s.boxes[i * 3:(i + 1) * 3]
            assert len(set(group)) == 1, "the target object moved between contexts"
            imgs = s.images[i * 3:(i + 1) * 3]
            assert not np.array_equal(imgs[0], imgs[1]), "the context did not change"
    pos, centres = position_scenes(cfg)
    assert centres.shape == (40, 2) and (centres > 0).all() and (centres < 1).all()
    assert centres[:, 0].std() > 0.1 and centres[:, 1].std() > 0.1
    again, _ = position_scenes(cfg)
    assert all(np.array_equal(a, b) for a, b in zip(pos.images, again.images))


def test_preset_errors_are_clear():
    with pytest.raises(ConfigError, match="unknown key.*bias_diagnostic preset"):
        DiagnosticCfg.from_cfg({"image_sz": 3})
    with pytest.raises(ConfigError, match="levels"):
        DiagnosticCfg.from_cfg({"level": "c3"})
    with pytest.raises(ConfigError, match="position_families"):
        DiagnosticCfg.from_cfg({"position_families": ["moon"]})


def test_run_on_a_random_backbone(tmp_path):
    torch.manual_seed(0)
    net = torchvision.models.resnet18()
    net.fc = torch.nn.Identity()
    save_backbone(net, tmp_path, {"arch": "resnet18", "method": "random"})
    ctx = TaskContext(name="bias_diagnostic", cfg=SMALL, workdir=tmp_path / "w", data_root=tmp_path, seed=0,
                      device="cpu", preset="tiny", task="bias_diagnostic", backbone=tmp_path / "backbone.pth")
    result = BiasDiagnostic().run(ctx)
    m = result.metrics
    for lv in ("c4", "c4head", "c5"):
        assert 0 <= m[f"coupling_{lv}"] <= 2 and m[f"position_r2_{lv}"] <= 1
        assert m[f"coupling_{lv}"] == pytest.approx((m[f"coupling_background_{lv}"] + m[f"coupling_neighbours_{lv}"]) / 2)
    assert m["coupling"] == m["coupling_c4head"] and m["position_r2"] == m["position_r2_c4head"]
    assert result.higher_is_better == {k: False for k in m}
    assert result.dataset["size"] == {"coupling_images": 24, "position_images": 40}
