"""Both D3SSL stages end to end on a few synthetic scenes: proposals, pretraining,
backbone export, resume, and the bias diagnostic on the result."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from harness.api import StageContext, TaskContext
from harness.core.checkpoints import load_backbone
from harness.data.synthetic.coco import write_coco
from harness.data.synthetic.sizes import TINY
from harness.core.errors import DataError
from harness.tasks.bias_diagnostic import BiasDiagnostic
from harness_methods.d3ssl import D3SSL
from harness_methods.d3ssl.stages.pretrain import run_pretrain
from harness_methods.d3ssl.stages.proposals import PROPOSALS_FILE, filter_boxes, ProposalCfg, run_proposals

RECIPES = Path(__file__).resolve().parents[2] / "methods" / "d3ssl" / "recipes"


def tiny_cfg() -> dict:
    cfg = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    cfg.update(epochs=1, batch_size=8)
    cfg["data"]["short_side"] = 32
    cfg["model"].update(hidden_dim=32, proj_dim=16)
    cfg["roi"]["size"] = 2
    cfg["augment"]["view1"]["size"] = cfg["augment"]["view2"]["size"] = 32
    cfg["augment"]["blur_kernel"] = 3
    cfg["loop"] = {"log_every": 1, "checkpoint_every": 1}
    return cfg


def _stage(name: str, cfg: dict, root: Path, work: Path, **kw) -> StageContext:
    stage = {s.name: s for s in D3SSL().stages(cfg)}[name]
    return StageContext(name=name, cfg=stage.view(cfg), workdir=work / name, data_root=root, seed=0, device="cpu",
                        preset="tiny", method="d3ssl", recipe="tiny", config_hash="x", **kw)


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_coco(root, 0, TINY, 0.85)
    return root


def test_filter_boxes_applies_the_soco_rules():
    cfg = ProposalCfg(min_size=10, max_aspect=3.0, size_range=(0.2, 0.9), max_boxes=2)
    boxes = [[0, 0, 5, 50], [0, 0, 40, 10], [10, 10, 40, 40], [0, 0, 100, 100], [20, 20, 30, 30], [5, 5, 30, 30]]
    out = filter_boxes(boxes, 100, 100, cfg)
    assert out.flatten().tolist() == pytest.approx([0.1, 0.1, 0.5, 0.5, 0.2, 0.2, 0.5, 0.5])


def test_stages_run_resume_and_export(coco_root, tmp_path):
    torch.manual_seed(0)
    cfg = tiny_cfg()
    summary = run_proposals(_stage("proposals", cfg, coco_root, tmp_path))
    assert summary["images"] == TINY.coco[0] and summary["boxes_per_image"] > 0
    boxes = json.loads((tmp_path / "proposals" / PROPOSALS_FILE).read_text())["boxes"]
    assert all(0 <= v <= 1 for bs in boxes.values() for b in bs for v in b)

    up = {"proposals": tmp_path / "proposals"}
    first = run_pretrain(_stage("pretrain", cfg, coco_root, tmp_path, upstream=up))
    assert first["steps"] == 2 and first["resumed_from"] == 0
    assert all(torch.isfinite(torch.tensor(first[k])) for k in ("loss", "loss_base", "loss_decoupling"))
    net = load_backbone(tmp_path / "pretrain" / "backbone.pth")
    meta = json.loads((tmp_path / "pretrain" / "backbone.json").read_text())
    assert meta["arch"] == "resnet18" and meta["method"] == "d3ssl"

    again = run_pretrain(_stage("pretrain", cfg, coco_root, tmp_path, upstream=up))
    assert again["resumed_from"] == 2
    net2 = load_backbone(tmp_path / "pretrain" / "backbone.pth")
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), net2.state_dict().values()))

    task_cfg = {"image_size": 48, "coupling_objects": 3, "contexts": 2, "position_objects": 30,
                "roi_size": 3, "batch_size": 16}
    ctx = TaskContext(name="bias_diagnostic", cfg=task_cfg, workdir=tmp_path / "diag", data_root=coco_root, seed=0,
                      device="cpu", preset="tiny", task="bias_diagnostic", backbone=tmp_path / "pretrain" / "backbone.pth")
    result = BiasDiagnostic().run(ctx)
    assert {"coupling", "position_r2"} <= set(result.metrics)
    assert not any(result.higher_is_better.values())


def test_selective_search_proposals(coco_root, tmp_path):
    pytest.importorskip("cv2.ximgproc", reason="needs the contrib build of OpenCV")
    cfg = tiny_cfg()
    cfg["proposals"] = {"source": "selective_search", "mode": "fast", "min_size": 4, "size_range": [0.1, 0.95],
                        "max_boxes": 20, "chunk_size": 8}
    summary = run_proposals(_stage("proposals", cfg, coco_root, tmp_path))
    assert summary["images"] == TINY.coco[0] and summary["boxes_per_image"] > 1
    boxes = json.loads((tmp_path / "proposals" / PROPOSALS_FILE).read_text())
    assert boxes["source"] == "selective_search"
    assert max(len(b) for b in boxes["boxes"].values()) <= 20


def test_missing_proposals_for_an_image_is_a_clear_error(coco_root, tmp_path):
    cfg = tiny_cfg()
    (tmp_path / "proposals").mkdir()
    (tmp_path / "proposals" / PROPOSALS_FILE).write_text(json.dumps({"source": "annotations", "boxes": {}}))
    with pytest.raises(DataError, match="no proposals for this image"):
        run_pretrain(_stage("pretrain", cfg, coco_root, tmp_path, upstream={"proposals": tmp_path / "proposals"}))
