"""Stage 2 of D3SSL: RoI-level pretraining with the shared loop, then backbone export.

Reads ``proposals.json`` from the ``proposals`` stage, trains :class:`D3SSLModel` with
:func:`harness.pretrain.loop.train` (checkpoint/resume, DDP, EMA via ``after_step``) on
batches from :class:`D3SSLBatch`, and exports the student trunk as ``backbone.pth``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.api import StageContext

PROPOSALS_STAGE = "proposals"


def run_pretrain(ctx: StageContext) -> dict[str, Any]:
    from harness.core.checkpoints import save_backbone
    from harness.pretrain.data import DataConfig, SceneImages
    from harness.pretrain.loop import LoopConfig, train
    from harness.pretrain.signature import Signature
    from harness.pretrain.stage import save_model_heads
    from harness_methods.d3ssl.model import D3SSLModel
    from harness_methods.d3ssl.stages.proposals import PROPOSALS_FILE, ProposalMeta, load_proposals_file
    from harness_methods.d3ssl.views import D3SSLBatch, module_cfgs

    cfg = ctx.cfg
    boxes = load_proposals_file(Path(ctx.upstream[PROPOSALS_STAGE]) / PROPOSALS_FILE)
    data = SceneImages.from_root(ctx.data_root, DataConfig.from_cfg(cfg.get("data")),
                                 meta=ProposalMeta(boxes, ctx.data_root))
    model = D3SSLModel(cfg)
    probe = Signature.for_stage(ctx, model.backbone(), data, cfg.get("augment"))
    probe.start()
    summary = train(ctx, model, data, LoopConfig.from_recipe(cfg), D3SSLBatch(cfg))
    summary.update(probe.finish())
    if ctx.world.get("rank", 0) == 0:
        save_backbone(model.backbone(), ctx.workdir,
                      {"arch": str(cfg["model"]["arch"]), "method": ctx.method, "recipe": ctx.recipe,
                       "config_hash": ctx.config_hash})
        save_model_heads(ctx.workdir, model, {"arch": str(cfg["model"]["arch"]), "method": ctx.method,
                                              "stage": ctx.name})
    summary["modules"] = ",".join(m.name for m in module_cfgs(cfg)) or "none"
    return summary
