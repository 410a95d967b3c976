"""Contrastive class activation maps of an exported backbone + projector: the maps and
their iterative refinement (``contrastive``), masks to boxes and the box/mask files
(``boxes``), batched inference from image files (``infer``). Shared by the ContraCAM
method and the ``cam_localization`` task."""
