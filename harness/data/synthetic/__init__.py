"""Deterministic synthetic benchmark, written in the official on-disk layouts.

``generate(out, seed, size)`` writes every dataset of :mod:`harness.data.layout` into
``out``; ``ensure(cache_dir, seed, size)`` returns a cached copy, generating it once.
The scene API for other code is in :mod:`harness.data.synthetic.scenes`.

Content: nine object classes (``SYNTHETIC_CLASSES``, real COCO ids) with distinct
shapes and textures, nine background families; in biased splits a scene's background is
its dominant class's preferred family with probability ``bias`` (default 0.85).

Counts per size (see :mod:`.sizes`; "tiny" for tests, "default" for the main job):

=====================  ===========================  ==============================
dataset                tiny                          default
=====================  ===========================  ==============================
coco train/val         16 / 8 images, 64x48          480 / 160 images, 128x96
coco_crop              crops of instances >= 1% area (about 2 per scene)
bg_challenge           8 variants x 9 classes x      8 variants x 9 classes x
                       (6 train + 4 val), 48 px       (40 train + 20 val), 80 px
=====================  ===========================  ==============================
"""
from __future__ import annotations

from .build import GENERATOR_VERSION, MANIFEST, ensure, generate, synth_main

__all__ = ["GENERATOR_VERSION", "MANIFEST", "generate", "ensure", "synth_main"]
