"""Dense transfer tasks (COCO / VOC detection, ADE20K / VOC segmentation) run through the
OpenMMLab stack (mmengine Runner with mmdet / mmseg configs from ``benchmarks/``).

Modules here import torch and OpenMMLab lazily: importing a task module for planning is
cheap; the heavy imports happen in the unit's process when ``run`` is called.
"""
