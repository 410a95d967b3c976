"""Deterministic synthetic benchmark, written in the official on-disk layouts.

``generate(out, seed, size)`` writes every dataset of :mod:`harness.data.layout` into
``out``; ``ensure(cache_dir, seed, size)`` returns ``cache_dir/<version>-<size>-s<seed>``,
generating it once (atomically, under a file lock); ``synth_main`` is the CLI entry.
The scene API for other code (render objects / backgrounds, compose) is
:mod:`harness.data.synthetic.scenes`. Importing this package imports no torch.

Content: nine object classes (``SYNTHETIC_CLASSES``, written with their real COCO ids),
each a distinct silhouette and texture; nine background families. In biased (training
and in-distribution) splits a scene's background is its dominant class's preferred
family with probability ``bias`` (default 0.85); shifted sets are unbiased. Same seed,
same bytes: fixed encoders, no timestamps, one random stream per item.

Counts per size ("tiny" for tests, a few seconds; "default" for the main job, about
15 s on 2 free cores and 14k files). Per-class counts are for each of the 9 classes.

=========================  =====================  ==========================
dataset                    tiny                   default
=========================  =====================  ==========================
COCO train / val           16 / 8 (64x48)         480 / 160 (128x96)
COCO-Crop                  crops of every instance with >= 1% area (~3 / scene)
ADE20K train / val         10 / 6 (64 px)         300 / 100 (112 px)
VOC2012 seg train/val/aug  6 / 6 / 6              120 / 100 / 120
VOC2007 trainval / test    8 / 8                  150 / 150
Open Images train / val    8 / 6                  200 / 100
Backgrounds Challenge      8 variants x (6 train + 4 val) per class (48 px);
                           default 8 x (40 + 20) per class (80 px)
ObjectNet (5 folders)      3 per folder (48 px)   20 per folder (96 px)
SI-Score area/rot/location 3 / 4 / 4 levels       7 / 8 / 25 levels (x2, x2, x1)
CUB, Flowers, Food, Pets   3 train + 2 test       12 train + 8 test per class
CIFAR-10 / -100 (32 px)    5 per class train,     40 per class train,
                           2 per class test       20 per class test
=========================  =====================  ==========================
"""
from __future__ import annotations

from .build import GENERATOR_VERSION, MANIFEST, ensure, generate, synth_main

__all__ = ["GENERATOR_VERSION", "MANIFEST", "generate", "ensure", "synth_main"]
