"""Stage ``gt_boxes`` of the oracle variant: ground-truth COCO boxes for the object-aware crop.

Every annotation (crowd regions included) whose area exceeds ``oracle.min_area`` of its
image becomes a box, expanded by ``oracle.margin`` of its width/height per side and
normalised. Writes ``boxes.json`` (same schema and keys as the ``cam_boxes`` stage:
``coco/<split>2017/<file name>``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.api import StageContext
from harness_methods.contracam.recipe import oracle_config
from harness_methods.contracam.stages.cam import BOXES_FILE


def gt_boxes(data_root: Path, split: str, min_area: float, margin: float) -> dict[str, list[tuple[float, ...]]]:
    """Normalised ``xyxy`` boxes of the COCO objects larger than ``min_area`` per image."""
    from harness.data.coco import read_coco
    from harness.cam.boxes import expand_box

    coco = read_coco(data_root, split)
    out: dict[str, list[tuple[float, ...]]] = {}
    for image in coco.images:
        key = Path(image.path).resolve().relative_to(Path(data_root).resolve()).as_posix()
        boxes = []
        for obj in image.objects:
            area = obj.area if obj.area is not None else obj.bbox[2] * obj.bbox[3]
            if area > min_area * image.width * image.height:
                x, y, w, h = obj.bbox
                boxes.append(expand_box((x, y, x + w, y + h), image.width, image.height, margin))
        out[key] = sorted(boxes)
    return out


def run(ctx: StageContext) -> dict[str, Any]:
    from harness.cam.boxes import save_boxes

    oracle = oracle_config(ctx.cfg)
    boxes = gt_boxes(ctx.data_root, oracle.split, oracle.min_area, oracle.margin)
    Path(ctx.workdir).mkdir(parents=True, exist_ok=True)
    save_boxes(Path(ctx.workdir) / BOXES_FILE, boxes)
    counts = [len(v) for v in boxes.values()]
    ctx.progress(1, 1)
    return {"images": len(boxes), "boxes_per_image": sum(counts) / max(len(counts), 1)}
