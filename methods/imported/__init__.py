"""An external SSL checkpoint (a public MoCo / OpenSelfSup / mmselfsup / BYOL / Lightning /
torchvision ResNet file, or a MoCo v3, DINO, iBOT or MAE ViT), evaluated as it is: one stage imports it as ``harness convert`` does
(backbone, and the projector where the file holds one) and exports it; nothing is trained.

    harness run --method imported --set method.checkpoint=moco_v2_800ep.pth.tar \\
        --set method.pretrain_data=imagenet --set method.epochs=800 --preset paper --suite all

The checkpoint's sha256 is part of the stage's unit key, so another file at the same path
is imported again; ``label``, ``pretrain_data`` and ``epochs`` only name the records
(``label``: the row in tables), so changing them reruns nothing. Light module (no torch): planning imports it.
Its fields are read in :mod:`harness_methods.imported.recipe`, the checkpoint converted in
:mod:`harness_methods.imported.model`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.api import Method, Stage
from harness_methods.imported.recipe import STAGE_KEYS, parse


class Imported(Method):
    """One stage: import the checkpoint and export it as the backbone."""

    name = "imported"

    def stages(self, cfg: dict[str, Any]) -> list[Stage]:
        from harness.core.hashing import sha256_file

        path = parse(cfg).checkpoint
        return [Stage("import", run="harness_methods.imported.stages:run", version="1", exports_backbone=True,
                      reads=STAGE_KEYS, identity={"checkpoint_sha256": sha256_file(path)})]

    def preflight(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Import the checkpoint into a scratch folder now, as the stage will: a file that
        cannot be imported fails the plan, and the tasks learn its arch and whether it holds
        a projector (ContraCAM's CAM needs one)."""
        import tempfile

        from harness.core.heads import HEADS_FILE
        from harness_methods.imported.model import import_backbone

        with tempfile.TemporaryDirectory(prefix="harness-import-") as tmp:
            report = import_backbone(parse(cfg), Path(tmp))
            return {"arch": report.arch, "heads": (Path(tmp) / HEADS_FILE).is_file()}
