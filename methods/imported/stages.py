"""Stage ``import``: the checkpoint as ``backbone.pth`` (+ ``heads.pth`` when it holds a projector)."""
from __future__ import annotations

from typing import Any

from harness.api import StageContext
from harness_methods.imported.recipe import parse


def run(ctx: StageContext) -> dict[str, Any]:
    from harness_methods.imported.model import import_backbone

    report = import_backbone(parse(ctx.cfg), ctx.workdir)
    ctx.log.info("%s", report.summary())
    ctx.progress(1, 1)
    return {"backbone_keys": report.kept, "layout": report.layout, "arch": report.arch, "heads": report.heads,
            "dropped": report.dropped}
