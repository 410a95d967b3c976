"""The contracts between the engine, method plugins and tasks.

Importing this module is cheap (no torch): the CLI's fast paths use it.

A *method* declares recipes and an ordered list of stages. Each stage runs as one
resumable unit in its own process, writes its artifacts into ``ctx.workdir`` and may
read earlier stages' artifacts from ``ctx.upstream[stage_name]``. The last stage writes
``backbone.pth`` (torchvision ResNet state dict without ``fc``) and ``backbone.json``
into its workdir (see :mod:`harness.core.checkpoints`).

A *task* reads that backbone, evaluates it and returns a :class:`TaskResult`. Methods
never import tasks and tasks never import methods.
"""
from __future__ import annotations

import abc
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.core.atomic import atomic_write_json
from harness.core.errors import ConfigError
from harness.core.paths import BACKBONE_FILE, BACKBONE_META  # noqa: F401  (part of the plugin API)


@dataclass
class Progress:
    """Writes ``progress.json`` in a unit's workdir (rate-limited); the runner polls it."""

    path: Path | None
    min_interval_s: float = 0.5
    _last: float = 0.0

    def __call__(self, step: int, total: int, **info: Any) -> None:
        now = time.monotonic()
        if self.path is None or (now - self._last < self.min_interval_s and step < total):
            return
        self._last = now
        atomic_write_json(self.path, {"step": int(step), "total": int(total), "time": time.time(), **info})


@dataclass
class UnitContext:
    """What every unit (stage or task) receives in its process."""

    name: str
    cfg: dict[str, Any]
    workdir: Path
    data_root: Path
    seed: int
    device: str
    preset: str
    progress: Callable[..., None] = field(default_factory=lambda: Progress(None))
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("harness.run.unit"))
    world: dict[str, Any] = field(default_factory=dict)
    dev_run: dict[str, int] | None = None  # --fast-dev-run: {"steps": N, "images": K} (harness.run.dev_run)
    tracking: dict[str, Any] = field(default_factory=dict)  # where curves go (harness.core.tracking)


@dataclass
class StageContext(UnitContext):
    """A method stage. ``upstream`` maps each earlier stage name to its workdir."""

    method: str = ""
    recipe: str = ""
    upstream: dict[str, Path] = field(default_factory=dict)
    config_hash: str = ""


@dataclass
class TaskContext(UnitContext):
    """A downstream task. ``backbone`` is the exported backbone file of the method."""

    task: str = ""
    backbone: Path = Path()
    backbone_meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskResult:
    """Named metrics (percentages where the field uses them) and their direction.

    ``samples``: the per-item values the metrics are computed from
    (:class:`harness.results.samples.SampleTable`), kept beside the record so that comparisons
    can resample the test items; None when the task has no per-item form.
    """

    metrics: dict[str, float]
    higher_is_better: dict[str, bool]
    dataset: dict[str, Any] = field(default_factory=dict)  # name, split, fingerprint, size
    framework: dict[str, Any] = field(default_factory=dict)  # name, versions
    extra: dict[str, Any] = field(default_factory=dict)
    samples: Any = None


@dataclass
class Stage:
    """One stage of a method. ``run`` executes inside the unit's process; give it as a
    ``"module:function"`` string so that planning never imports torch.

    ``identity``: values that identify inputs outside the recipe and the data (the
    sha256 of an external checkpoint), part of the stage's unit key.

    ``reads``: the top-level recipe keys the stage's output depends on (None: all of
    them). Only these enter the stage's unit key, so changing a later stage's settings
    does not rerun it; the stage sees them through a :class:`StageRecipe`, which refuses
    any other recipe key, so an incomplete list fails loudly instead of going stale.
    """

    name: str
    run: str | Callable[[StageContext], dict[str, Any]]
    version: str = "1"
    exports_backbone: bool = False
    reads: tuple[str, ...] | None = None
    identity: dict[str, str] = field(default_factory=dict)  # e.g. an input file's sha256, hashed into the key

    def view(self, recipe: dict[str, Any]) -> dict[str, Any]:
        """The recipe as this stage sees it (``ctx.cfg``)."""
        return recipe if self.reads is None else StageRecipe(recipe, self.reads, self.name)


ALWAYS_VISIBLE = ("name", "recipe")  # the method and recipe names


class StageRecipe(dict):
    """A stage's view of its recipe: the keys it declared in :attr:`Stage.reads`. Reading
    (``[]``, ``get``, ``in``) a recipe key it did not declare is an error."""

    def __init__(self, recipe: dict[str, Any], reads: tuple[str, ...], stage: str):
        keep = set(reads) | set(ALWAYS_VISIBLE)
        super().__init__({k: v for k, v in recipe.items() if k in keep})
        self.hidden = frozenset(recipe) - frozenset(dict.keys(self))
        self.stage = stage

    def _check(self, key: Any) -> None:
        if key in self.hidden:
            raise ConfigError(f"stage {self.stage!r} reads recipe key {key!r}, which is not in its Stage.reads "
                              f"{sorted(k for k in self if k not in ALWAYS_VISIBLE)}")

    def __getitem__(self, key: Any) -> Any:
        self._check(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._check(key)
        return super().get(key, default)

    def __contains__(self, key: Any) -> bool:
        self._check(key)
        return super().__contains__(key)



class Method(abc.ABC):
    """Base class of method plugins.

    Recipes are YAML files ``recipes/<name>.yaml`` next to the plugin's module (or a
    ``recipes`` dict on the class). ``stages(cfg)`` returns the stages for a resolved
    recipe; the last one must export the backbone.
    """

    name: str = ""
    recipes: dict[str, dict[str, Any]] | None = None
    paper: str | None = None  # the address of the paper the method comes from (leaderboard links)

    @abc.abstractmethod
    def stages(self, cfg: dict[str, Any]) -> list[Stage]:
        """The ordered stages for a resolved recipe."""

    def preflight(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Check at plan time what the stages would fail on before any training (an input
        checkpoint, say: raise CheckpointError) and return what is known of the exported
        backbone beyond the recipe: ``arch``, ``heads`` (False when no projection head is
        exported beside it). Default: nothing beyond the recipe."""
        return {}


class Task(abc.ABC):
    """Base class of downstream tasks; name and version come from the task catalog."""

    name: str = ""
    version: str = "1"

    @abc.abstractmethod
    def run(self, ctx: TaskContext) -> TaskResult:
        """Evaluate ``ctx.backbone`` and return its metrics."""

    def preflight(self, ctx: TaskContext) -> list[str]:
        """Check at plan time, before anything runs, what :meth:`run` would fail on later:
        read the data with the task's own readers, build its configuration. ``ctx.workdir``
        is a scratch folder and ``ctx.backbone`` does not exist yet (``ctx.backbone_meta``
        holds the planned ``arch`` and, when known, ``heads``: whether a projection head is
        exported beside it). Raise DataError or ConfigError; return notes on what
        was not checked. The catalog's ``reads`` are checked for every task besides this."""
        return []
