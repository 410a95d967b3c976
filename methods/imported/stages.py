"""Stage ``import``: the checkpoint as ``backbone.pth`` (+ ``heads.pth`` when it holds a projector)."""
from __future__ import annotations

from typing import Any

from harness.api import BACKBONE_FILE, StageContext
from harness_methods.imported import checkpoint_path


def run(ctx: StageContext) -> dict[str, Any]:
    from harness.convert import convert

    ctx.workdir.mkdir(parents=True, exist_ok=True)
    report = convert(checkpoint_path(ctx.cfg), ctx.workdir / BACKBONE_FILE, ctx.cfg.get("arch"))
    ctx.log.info("%s", report.summary())
    ctx.progress(1, 1)
    return {"backbone_keys": report.kept, "layout": report.layout, "arch": report.arch, "heads": report.heads,
            "dropped": report.dropped}
