"""Small method and task classes that exercise the engine without torch."""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from harness.api import BACKBONE_FILE, BACKBONE_META, Method, Stage, StageContext, Task, TaskContext, TaskResult
from harness.core.registry import register_method, register_task


def _steps(ctx: StageContext, tag: str) -> int:
    """Count to cfg['steps'], checkpointing each step; resumes from the checkpoint."""
    ckpt = ctx.workdir / "ckpt.json"
    (ctx.workdir / "pid").write_text(str(os.getpid()))
    step = json.loads(ckpt.read_text())["step"] if ckpt.exists() else 0
    total = int(ctx.cfg["steps"])
    while step < total:
        time.sleep(float(ctx.cfg.get("sleep", 0)))
        step += 1
        with open(ctx.workdir / "executed.log", "a") as fh:
            fh.write(f"{tag} {step}\n")
        tmp = ckpt.with_suffix(".tmp")
        tmp.write_text(json.dumps({"step": step}))
        os.replace(tmp, ckpt)
        ctx.progress(step, total)
    return step


def stage_a(ctx: StageContext) -> dict:
    if ctx.cfg.get("fail_stage") == "a":
        raise RuntimeError("stage a failed on purpose")
    steps = _steps(ctx, "a")
    (ctx.workdir / "a.txt").write_text(f"{ctx.cfg['value']}")
    return {"steps": steps}


def stage_b(ctx: StageContext) -> dict:
    value = (ctx.upstream["a"] / "a.txt").read_text()
    steps = _steps(ctx, "b")
    payload = f"backbone {value} seed {ctx.seed}".encode()
    (ctx.workdir / BACKBONE_FILE).write_bytes(payload)
    (ctx.workdir / BACKBONE_META).write_text(json.dumps(
        {"arch": "toy", "sha256": hashlib.sha256(payload).hexdigest(), "method": "toy",
         "recipe": ctx.recipe, "config_hash": ctx.config_hash}))
    return {"steps": steps, "final_loss": 0.5}


@register_method("toy")
class ToyMethod(Method):
    recipes = {"tiny": {"pretrain_data": "none", "epochs": 1, "value": 3, "steps": 3, "sleep": 0.0,
                        "fail_stage": None},
               "big": {"pretrain_data": "none", "epochs": 2, "value": 5, "steps": 3, "sleep": 0.0,
                       "fail_stage": None}}

    def stages(self, cfg: dict) -> list[Stage]:
        return [Stage("a", run=f"{__name__}:stage_a"), Stage("b", run=f"{__name__}:stage_b", exports_backbone=True)]


@register_method("toy_split")
class ToySplitMethod(Method):
    """The toy method with stage ``a`` declaring the recipe keys it reads."""

    recipes = ToyMethod.recipes
    reads_a: tuple[str, ...] = ("value", "steps", "sleep", "fail_stage")

    def stages(self, cfg: dict) -> list[Stage]:
        return [Stage("a", run=f"{__name__}:stage_a", reads=self.reads_a),
                Stage("b", run=f"{__name__}:stage_b", exports_backbone=True)]


@register_method("toy_undeclared")
class ToyUndeclaredMethod(ToySplitMethod):
    """Stage ``a`` reads ``value`` without declaring it."""

    reads_a = ("steps", "sleep", "fail_stage")


@register_task("toy_score", version="2", presets={"tiny": {"scale": 2.0, "fail_if": None}})
class ToyScore(Task):
    """Scores the toy backbone: scale x the number in it."""

    def run(self, ctx: TaskContext) -> TaskResult:
        if ctx.cfg.get("fail_if") and Path(ctx.cfg["fail_if"]).exists():
            raise ValueError(f"marker {ctx.cfg['fail_if']} present")
        value = float(ctx.backbone.read_bytes().split()[1])
        return TaskResult({"score": value * ctx.cfg["scale"], "err": 1.0 / value},
                          {"score": True, "err": False}, dataset={"name": "toy"})


@register_task("toy_other", version="1", presets={"tiny": {"offset": 1}})
class ToyOther(Task):
    """Another toy task."""

    def run(self, ctx: TaskContext) -> TaskResult:
        return TaskResult({"acc": 50.0 + ctx.cfg["offset"]}, {"acc": True})
