"""Typed views of the ContraCAM recipe keys (no torch: planning imports this).

Recipe keys of the method itself (the rest are the base pretraining method's keys,
shared by both pretraining stages):

- ``base``: ``mocov2`` or ``byol``, the contrastive model of both pretraining stages.
- ``variant``: ``crop`` (object-aware random crop from ContraCAM boxes), ``bgmix``
  (background mixup with ContraCAM masks), ``crop+bgmix`` (both), ``oracle``
  (object-aware crop from ground-truth COCO boxes; no vanilla pretraining, no CAM),
  ``mixup`` / ``cutmix`` (the baselines: Mixup / CutMix of view 1, no CAM).
- ``cam``: CAM settings (:class:`CamConfig`).
- ``bgmix``: background mixup settings (:class:`BgMixConfig`).
- ``mix``: ``{alpha: 1.0}`` for the Mixup / CutMix baselines.
- ``oracle``: ``{split: train, min_area: 0.01, margin: 0.2}``.
- ``objaware``: optional overrides of top-level keys for the second pretraining stage
  (e.g. ``{data: {...}}``), merged over the recipe.
- ``vanilla``: the same for the first (vanilla) pretraining stage, whose network only
  serves the CAM (e.g. ``{epochs: 10}``; the top-level ``epochs`` is then the exported
  network's schedule, the one records report).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.core.config_section import field_names, recipe_section
from harness.core.errors import ConfigError

BASES = ("mocov2", "byol")
VARIANTS = ("crop", "bgmix", "crop+bgmix", "oracle", "mixup", "cutmix")


def _section(recipe: dict[str, Any], key: str, cls: type) -> Any:
    return cls(**recipe_section(recipe, key, field_names(cls)))


@dataclass(frozen=True)
class CamConfig:
    """``image_size``: CAM input side (images resized to a square, no crop);
    ``batch_size``: images per inference batch (the negatives; dataset order);
    ``iterations``: refinement steps T; ``expand_res``: 1, 2 or 4; ``numerator``: ``paper``
    or ``official`` (:mod:`harness.cam.contrastive`); ``crf``: dense CRF
    before box extraction; ``threshold``/``min_area``/``margin``/``binarize``/``contours``:
    box extraction (:mod:`harness.cam.boxes`);
    ``chunk``: images per resumable unit of work (a multiple of ``batch_size``)."""

    image_size: int = 224
    batch_size: int = 256
    iterations: int = 10
    expand_res: int = 2
    numerator: str = "paper"
    crf: bool = False
    binarize: str = "soft"
    contours: str = "external"
    threshold: float = 0.5
    min_area: float = 0.01
    margin: float = 0.2
    chunk: int = 2048

    def check(self) -> "CamConfig":
        if self.expand_res not in (1, 2, 4):
            raise ConfigError(f"cam.expand_res must be 1, 2 or 4, got {self.expand_res}")
        from harness.cam.boxes import BINARIZE, CONTOURS
        from harness.cam.contrastive import NUMERATORS

        for key, allowed in (("numerator", NUMERATORS), ("binarize", BINARIZE), ("contours", CONTOURS)):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"cam.{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if self.iterations < 1 or self.batch_size < 1 or self.image_size < 32:
            raise ConfigError(f"cam.iterations and cam.batch_size must be >= 1 and cam.image_size >= 32 "
                              f"(got {self.iterations}, {self.batch_size}, {self.image_size})")
        if self.chunk < self.batch_size or self.chunk % self.batch_size:
            raise ConfigError(f"cam.chunk ({self.chunk}) must be a multiple of cam.batch_size ({self.batch_size}) "
                              f"so that resuming does not change the negatives")
        return self


@dataclass(frozen=True)
class BgMixConfig:
    """Background mixup of view 1: ``cam_thres`` (hard-mask threshold), ``aug_prob``,
    ``queue_size`` (FIFO of backgrounds)."""

    cam_thres: float = 0.2
    aug_prob: float = 0.4
    queue_size: int = 50


@dataclass(frozen=True)
class MixConfig:
    """Mixup / CutMix baselines: ``lam ~ Beta(alpha, alpha)``."""

    alpha: float = 1.0


@dataclass(frozen=True)
class OracleConfig:
    """Ground-truth boxes from ``coco/annotations/instances_<split>2017.json``: objects
    with area > ``min_area`` of the image, expanded by ``margin`` per side."""

    split: str = "train"
    min_area: float = 0.01
    margin: float = 0.2


@dataclass(frozen=True)
class ContraCamRecipe:
    base: str
    variant: str
    cam: CamConfig
    bgmix: BgMixConfig
    mix: MixConfig
    oracle: OracleConfig

    @property
    def uses_crop(self) -> bool:
        return self.variant in ("crop", "crop+bgmix", "oracle")

    @property
    def uses_bgmix(self) -> bool:
        return self.variant in ("bgmix", "crop+bgmix")

    @property
    def uses_cam(self) -> bool:
        return self.variant in ("crop", "bgmix", "crop+bgmix")

    @classmethod
    def from_recipe(cls, recipe: dict[str, Any]) -> "ContraCamRecipe":
        variant = recipe.get("variant", "crop")
        if variant not in VARIANTS:
            raise ConfigError(f"contracam recipe: variant must be one of {VARIANTS}, got {variant!r}")
        return cls(base_name(recipe), variant, cam_config(recipe), _section(recipe, "bgmix", BgMixConfig),
                   _section(recipe, "mix", MixConfig), oracle_config(recipe))


def base_name(recipe: dict[str, Any]) -> str:
    """The ``base`` pretraining method."""
    base = recipe.get("base", "mocov2")
    if base not in BASES:
        raise ConfigError(f"contracam recipe: base must be one of {BASES}, got {base!r}")
    return str(base)


def cam_config(recipe: dict[str, Any]) -> CamConfig:
    return _section(recipe, "cam", CamConfig).check()


def oracle_config(recipe: dict[str, Any]) -> OracleConfig:
    return _section(recipe, "oracle", OracleConfig)


METHOD_KEYS = ("base", "variant", "cam", "bgmix", "mix", "oracle", "objaware", "vanilla")


def vanilla_reads(recipe: dict[str, Any]) -> tuple[str, ...]:
    """The recipe keys of the vanilla pretraining stage: ``base``, ``vanilla`` and the base method's keys."""
    return ("base", "vanilla") + tuple(k for k in recipe if k not in METHOD_KEYS)


CAM_READS = ("cam", "data", "objaware")  # the CAM runs on the second stage's images
ORACLE_READS = ("oracle",)


def base_recipe(recipe: dict[str, Any], second_stage: bool = False) -> dict[str, Any]:
    """The recipe of the base pretraining method: the ContraCAM recipe without its own
    keys, with the stage's overrides (``vanilla`` for the first stage, ``objaware`` for the
    second) merged one level deep."""
    out = {k: v for k, v in recipe.items() if k not in METHOD_KEYS}
    overrides = recipe.get("objaware" if second_stage else "vanilla") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"recipe section {'objaware' if second_stage else 'vanilla'!r} must be a mapping, "
                          f"got {overrides!r}")
    for k, v in overrides.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
