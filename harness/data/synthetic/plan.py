"""Multi-object scene sampling with the built-in class <-> background bias.

A scene has a *dominant* object (the largest, its class drawn uniformly) plus smaller
objects of random classes painted over it in back-to-front order, so objects occlude
each other and may be cut by the image border. In a biased split the background family
is the dominant class's preferred family with probability ``bias`` and one of the other
eight families otherwise; in an unbiased split it is uniform over all nine. A scene may
also hold a crowd: a tight cluster of small same-class objects annotated as one region.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.data.layout import SYNTHETIC_CLASSES

from .backgrounds import FAMILIES, preferred_family
from .scenes import Composite, ObjectPatch, Placement, compose, mask_box, render_background, render_object


@dataclass(frozen=True)
class ObjectSpec:
    category: str
    size: float  # canvas side as a fraction of the image side
    cx: float  # centre, fractions of width / height
    cy: float
    rotation: float
    aspect: float
    texture: str | None = None
    group: int = 0  # > 0: member of crowd ``group``


@dataclass(frozen=True)
class SceneSpec:
    width: int
    height: int
    family: str
    objects: tuple[ObjectSpec, ...]

    @property
    def dominant(self) -> str:
        return self.objects[0].category


@dataclass
class Instance:
    """One annotated region of a rendered scene (a crowd is one instance)."""

    category: str
    mask: np.ndarray
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    iscrowd: bool
    full_area: int  # pixels of the unoccluded object(s), for occlusion/truncation flags
    group_size: int = 1

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class Scene:
    spec: SceneSpec
    image: np.ndarray
    instances: list[Instance]
    background: np.ndarray


@dataclass
class Single:
    """A single-object image: its class index, pixels, visible mask, box and background."""

    label: int
    image: np.ndarray
    mask: np.ndarray
    box: tuple[int, int, int, int]
    family: str
    background: np.ndarray


def render_single(rng: np.random.Generator, label: int, width: int, height: int, family: str,
                  size: tuple[float, float] = (0.5, 0.78), rotation: tuple[float, float] = (-20.0, 20.0),
                  jitter: float = 0.12, texture: str | None = None) -> Single:
    """One object of class ``SYNTHETIC_CLASSES[label]`` near the centre of a ``family`` background."""
    bg = render_background(family, height, width, rng)
    side = min(width, height)
    patch = render_object(SYNTHETIC_CLASSES[label], int(round(side * rng.uniform(*size))), float(rng.uniform(*rotation)),
                          texture, rng, float(rng.uniform(0.85, 1.2)))
    cx = width * (0.5 + rng.uniform(-jitter, jitter))
    cy = height * (0.5 + rng.uniform(-jitter, jitter))
    comp = compose(bg, [Placement(patch, cx, cy)])
    return Single(label, comp.image, comp.masks[0], comp.boxes[0], family, bg)


def pick_family(rng: np.random.Generator, category: str, bias: float | None) -> str:
    """``bias`` None = uniform; else the preferred family with probability ``bias``."""
    if bias is None:
        return FAMILIES[int(rng.integers(len(FAMILIES)))]
    pref = preferred_family(category)
    if rng.random() < bias:
        return pref
    others = [f for f in FAMILIES if f != pref]
    return others[int(rng.integers(len(others)))]


def sample_scene(rng: np.random.Generator, width: int, height: int, n_objects: tuple[int, int],
                 bias: float | None, crowd_prob: float = 0.0) -> SceneSpec:
    """Draw a scene layout; ``n_objects`` is the inclusive range of separate objects."""
    classes = SYNTHETIC_CLASSES
    dominant = classes[int(rng.integers(len(classes)))]
    family = pick_family(rng, dominant, bias)
    objs = [ObjectSpec(dominant, float(rng.uniform(0.42, 0.7)), float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.3, 0.7)),
                       float(rng.uniform(-25, 25)), float(rng.uniform(0.8, 1.25)))]
    for _ in range(int(rng.integers(n_objects[0], n_objects[1] + 1)) - 1):
        objs.append(ObjectSpec(classes[int(rng.integers(len(classes)))], float(rng.uniform(0.18, 0.42)),
                               float(rng.uniform(0.08, 0.92)), float(rng.uniform(0.08, 0.92)),
                               float(rng.uniform(-30, 30)), float(rng.uniform(0.8, 1.25))))
    if rng.random() < crowd_prob:
        cat = classes[int(rng.integers(len(classes)))]
        gx, gy = float(rng.uniform(0.25, 0.75)), float(rng.uniform(0.25, 0.75))
        for _ in range(int(rng.integers(4, 7))):
            objs.append(ObjectSpec(cat, float(rng.uniform(0.11, 0.16)), gx + float(rng.uniform(-0.09, 0.09)),
                                   gy + float(rng.uniform(-0.09, 0.09)), float(rng.uniform(-30, 30)), 1.0, group=1))
    # back-to-front: larger objects first, with a few random swaps for variety
    order = sorted(range(len(objs)), key=lambda i: -objs[i].size)
    for k in range(len(order) - 1):
        if rng.random() < 0.2:
            order[k], order[k + 1] = order[k + 1], order[k]
    if order[0] != 0 and objs[0].group == 0:
        order.remove(0)
        order.insert(0, 0)
    return SceneSpec(width, height, family, tuple(objs[i] for i in order))


def render_patch(spec: ObjectSpec, side: int, rng: np.random.Generator) -> ObjectPatch:
    return render_object(spec.category, max(6, int(round(spec.size * side))), spec.rotation, spec.texture, rng, spec.aspect)


def render_scene(spec: SceneSpec, rng: np.random.Generator, min_area: int = 12) -> Scene:
    """Render a layout; objects left with fewer than ``min_area`` visible pixels are removed."""
    side = min(spec.width, spec.height)
    bg = render_background(spec.family, spec.height, spec.width, rng)
    patches = [render_patch(o, side, rng) for o in spec.objects]
    keep = list(range(len(patches)))
    while True:
        comp: Composite = compose(bg, [Placement(patches[i], spec.objects[i].cx * spec.width, spec.objects[i].cy * spec.height)
                                       for i in keep])
        small = [j for j, i in enumerate(keep) if spec.objects[i].group == 0 and comp.area(j) < min_area]
        if not small:
            break
        keep = [i for j, i in enumerate(keep) if j not in small]
    instances: list[Instance] = []
    crowd = np.zeros(bg.shape[:2], bool)
    crowd_full, crowd_n, crowd_cat = 0, 0, None
    for j, i in enumerate(keep):
        o = spec.objects[i]
        if o.group:
            crowd |= comp.masks[j]
            crowd_full += int(patches[i].mask.sum())
            crowd_n += 1
            crowd_cat = o.category
        elif comp.boxes[j] is not None:
            instances.append(Instance(o.category, comp.masks[j], comp.boxes[j], False, int(patches[i].mask.sum())))
    box = mask_box(crowd)
    if crowd_cat is not None and box is not None and crowd.sum() >= min_area:
        instances.append(Instance(crowd_cat, crowd, box, True, crowd_full, crowd_n))
    kept = SceneSpec(spec.width, spec.height, spec.family, tuple(spec.objects[i] for i in keep))
    return Scene(kept, comp.image, instances, bg)
