"""Plan-time checks of a run, before anything is launched (``harness run`` and its ``--dry-run``,
``harness data verify --suite``).

For every unit of the plan:

- data: each task's catalog ``reads`` (:mod:`harness.run.preflight_data`) read with the
  datasets' own readers, each stage's pretraining image folders listed with the loop's
  reader (and at least one global batch in them), and whatever the task's own
  :meth:`harness.api.Task.preflight` checks (the dense tasks read their annotations and
  build their complete mmengine config, so a bad override fails now);
- architecture: the arch every task preset asks for against the arch the recipe exports;
- batch: every global batch divisible by the world size the launcher gives the unit;
- resources: CUDA where the preset needs it, and free disk against an estimate of the
  planned checkpoints, exports and large artifacts.

A finding names its unit, the file or key and what was expected. :func:`raise_for`
turns findings into one error: :class:`ConfigError` (exit 2) when any is about the
configuration, else :class:`DataError` (exit 3). Nothing here writes into the output folder.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from harness.core import registry
from harness.core.errors import CheckpointError, ConfigError, DataError, HarnessError
from harness.run.preflight_data import ReadChecker, unit_reads

CONFIG, DATA, NOTE = "config", "data", "note"
GB = 1024 ** 3
# parameters of the exported trunks (millions), for the disk estimate
ARCH_PARAMS_M = {"resnet18": 11.7, "resnet34": 21.8, "resnet50": 25.6, "resnet101": 44.5, "resnet152": 60.2,
                 "vit_tiny_patch16": 5.7, "vit_small_patch16": 22.0, "vit_base_patch16": 86.6}
STAGE_COPIES = 6  # a stage checkpoint: online + target/momentum nets and heads (~3x) with optimizer state (~2x), plus the export
DENSE_TASK_GB = {"resnet18": 0.6, "resnet50": 1.2, "vit_base_patch16": 3.0}  # mmengine keeps 2 checkpoints + last


@dataclass(frozen=True)
class Finding:
    unit: str  # e.g. "task coco_det", "stage pretrain", or "run"
    kind: str  # config | data | note
    where: str  # the file or the config key
    detail: str  # what was expected

    def line(self) -> str:
        return f"{self.unit}: {self.where}: {self.detail}"


@dataclass(frozen=True)
class Worlds:
    """Processes per unit the launcher gives stages and tasks."""

    stage: int = 1
    task: int = 1


def method_arch(method_cfg: dict[str, Any]) -> str | None:
    """The trunk the recipe exports (``arch`` or ``model.arch``); None when inferred later."""
    arch = method_cfg.get("arch")
    if arch is None and isinstance(method_cfg.get("model"), dict):
        arch = method_cfg["model"].get("arch")
    return str(arch) if arch else None


def exported_backbone(cfg: dict[str, Any]) -> tuple[dict[str, Any], Finding | None]:
    """What the run's exported backbone will be (``arch``, ``heads``): the recipe's arch,
    updated by the method plugin's own :meth:`~harness.api.Method.preflight`; a problem it
    finds (a checkpoint it cannot import) is a finding of the method's stages."""
    facts: dict[str, Any] = {"arch": method_arch(cfg["method"])}
    name = cfg["method"].get("name")
    if name not in registry.methods():
        return facts, None
    try:
        facts.update(registry.load_method(name).preflight(cfg["method"]) or {})
    except (DataError, CheckpointError) as exc:
        return facts, Finding(f"method {name}", DATA, "method", str(exc))
    except HarnessError as exc:
        return facts, Finding(f"method {name}", CONFIG, "method", str(exc))
    return facts, None


def check_plan(cfg: dict[str, Any], units: list[Any], data_root: Path | None, *, worlds: Worlds = Worlds(),
               out: Path | None = None, launcher: str = "local", checker: ReadChecker | None = None,
               resources: bool = True) -> list[Finding]:
    """Every finding of one resolved configuration's plan (``data_root`` None: skip the data;
    ``resources`` False: skip CUDA and disk)."""
    findings: list[Finding] = []
    given = cfg["data"].get("root")
    if given and not Path(given).is_dir():
        findings.append(Finding("run", DATA, str(given), "data root not found (expected a folder holding the "
                                "datasets in their official layouts; see `harness data verify`)"))
    exported, problem = exported_backbone(cfg)
    if problem is not None:
        findings.append(problem)
    arch = exported.get("arch")
    checker = checker or (ReadChecker(data_root) if data_root is not None else None)
    for unit in units:
        if unit.kind == "stage":
            findings += _stage_findings(unit, cfg["method"], data_root, worlds.stage)
        else:
            findings += _task_findings(unit, cfg, exported, data_root, checker, worlds.task)
    if resources:
        findings += _cuda_findings(cfg, launcher)
    if resources and out is not None:
        findings += _disk_findings(cfg, units, out, data_root)
    return findings


def summary(findings: list[Finding], units: int, data_root: Path | None) -> str:
    """What preflight checked and its notes, for the console."""
    problems = sum(f.kind != NOTE for f in findings)
    data = f"data root {data_root}" if data_root is not None else "data not checked (the root does not exist yet)"
    lines = [f"preflight {'failed' if problems else 'passed'}: {units} units, {data}"
             + (f", {problems} problem(s)" if problems else "")]
    lines += [f"  note: {f.line()}" for f in findings if f.kind == NOTE]
    return "\n".join(lines)


def verify_suite_main(data_root: Path, suite: str, preset: str, method: str | None = None,
                      recipe: str | None = None, overrides: list[str] | None = None) -> int:
    """``harness data verify --suite S --preset P [--method M]``: can this run start on this
    root? Every unit's reads (and the method's pretraining folders when a method is named);
    one line per unit, then the verdict. Problems raise (exit 3 for data, 2 for config)."""
    from harness.core import config as config_mod
    from harness.run import runner

    cfg = config_mod.resolve(method or "random", suite, preset=preset, recipe=recipe, overrides=overrides,
                             data_root=str(data_root))
    units = runner.plan(cfg)
    if method is None:  # the suite alone: no stage, and no recipe to hold the task presets' arch against
        units = [u for u in units if u.kind == "task"]
        cfg = {**cfg, "method": {"name": "-", "recipe": "-"}}
    findings = check_plan(cfg, units, Path(data_root), resources=False)
    for unit in units:
        mine = [f for f in findings if f.unit == unit.label and f.kind != NOTE]
        print(f"{'ok' if not mine else 'FAILED':<7} {unit.label}")
        for f in mine:
            print(f"        {f.where}: {f.detail}")
    for f in findings:
        if f.unit == "run" and f.kind != NOTE:
            print(f"FAILED  {f.line()}")
    raise_for(findings, what=f"data verify --suite {suite} --preset {preset}")
    print(f"\nOK: suite {suite} at preset {preset} can start on {data_root}")
    return 0


def raise_for(findings: list[Finding], what: str = "preflight") -> None:
    """One error listing every problem (notes are not problems)."""
    problems = [f for f in findings if f.kind != NOTE]
    if not problems:
        return
    units: dict[tuple[str, str, str], list[str]] = {}  # one line for the same problem of several units
    for f in problems:
        units.setdefault((f.kind, f.where, f.detail), []).append(f.unit)
    text = f"{what} failed ({len(units)} problem{'s' if len(units) > 1 else ''}; nothing was launched):\n" + \
        "\n".join(f"  {', '.join(names)}: {where}: {detail}" for (_, where, detail), names in units.items())
    raise (ConfigError if any(f.kind == CONFIG for f in problems) else DataError)(text)


# ---------------------------------------------------------------- stages
def _data_sections(node: Any) -> Iterator[dict[str, Any]]:
    """Every ``data`` mapping with ``dirs`` in a recipe (second-stage overrides included)."""
    if isinstance(node, dict):
        data = node.get("data")
        if isinstance(data, dict) and "dirs" in data:
            yield data
        for key, value in node.items():
            if key != "data":
                yield from _data_sections(value)


def _stage_findings(unit: Any, method_cfg: dict[str, Any], data_root: Path | None, world: int) -> list[Finding]:
    label = unit.label
    out: list[Finding] = []
    batch = method_cfg.get("batch_size")
    if isinstance(batch, int) and batch % world:
        out.append(Finding(label, CONFIG, "method.batch_size",
                           f"global batch {batch} is not divisible by the {world} processes of the stage"))
    if data_root is None:
        return out
    from harness.pretrain.data import list_scene_images

    seen: set[tuple[str, ...]] = set()
    for data in _data_sections(method_cfg):
        dirs = tuple(data["dirs"] or ())
        if dirs in seen:
            continue
        seen.add(dirs)
        try:
            n = len(list_scene_images(data_root, dirs))
        except DataError as exc:
            out.append(Finding(label, DATA, ", ".join(str(Path(data_root) / d) for d in dirs), str(exc)))
            continue
        if isinstance(batch, int) and n < batch:
            out.append(Finding(label, DATA, ", ".join(str(Path(data_root) / d) for d in dirs),
                               f"{n} images, fewer than one global batch of {batch}"))
    return out


# ---------------------------------------------------------------- tasks
def _task_findings(unit: Any, cfg: dict[str, Any], exported: dict[str, Any], data_root: Path | None,
                   checker: ReadChecker | None, world: int) -> list[Finding]:
    label = unit.label
    arch = exported.get("arch")
    out: list[Finding] = []
    wanted = unit.cfg.get("arch")
    if wanted is not None and arch is not None and wanted != arch:
        out.append(Finding(label, CONFIG, f"tasks.{unit.name}.arch",
                           f"the task preset expects a {wanted} backbone; recipe {cfg['method']['recipe']!r} of "
                           f"{cfg['method']['name']} exports {arch}"))
    entry = registry.task_entry(unit.task)
    batch = unit.cfg.get("batch_size")
    if entry.framework in ("mmdet", "mmseg") and isinstance(batch, int) and batch % world:
        out.append(Finding(label, CONFIG, f"tasks.{unit.name}.batch_size",
                           f"total batch {batch} is not divisible by the {world} processes of the task"))
    try:
        reads = unit_reads(entry.reads, {"preset": cfg["preset"], **unit.cfg}, unit.name)
    except ConfigError as exc:
        return out + [Finding(label, CONFIG, str(entry.catalog_file or entry.name), str(exc))]
    if data_root is None:
        return out
    if entry.reads is None:
        out.append(Finding(label, NOTE, str(entry.catalog_file or entry.name), "declares no reads: data not checked"))
    for read in reads:
        try:
            problems = checker.check(read) if checker else []
        except ConfigError as exc:
            out.append(Finding(label, CONFIG, str(entry.catalog_file or entry.name), str(exc)))
            continue
        out += [Finding(label, DATA, p.path, f"{p.read}: {p.detail}") for p in problems]
    if not any(f.where.endswith(".arch") for f in out):  # a wrong trunk fails its own check the same way
        out += _own_preflight(unit, cfg, exported, data_root, world)
    return out


def _own_preflight(unit: Any, cfg: dict[str, Any], exported: dict[str, Any], data_root: Path,
                   world: int) -> list[Finding]:
    """The task's own :meth:`~harness.api.Task.preflight` on a scratch workdir."""
    from harness.api import TaskContext

    task = registry.load_task(unit.task)
    with tempfile.TemporaryDirectory(prefix="harness-preflight-") as tmp, _world_env(world):
        ctx = TaskContext(name=unit.name, cfg=unit.cfg, workdir=Path(tmp), data_root=Path(data_root),
                          seed=int(cfg["seed"]), device=_planned_device(cfg), preset=cfg["preset"], task=unit.name,
                          backbone=Path(tmp) / "planned-backbone.pth", backbone_meta={k: v for k, v in exported.items() if v is not None},
                          world={"rank": 0, "world_size": world, "local_rank": 0})
        try:
            notes = task.preflight(ctx) or []
        except (DataError, CheckpointError) as exc:
            return [Finding(unit.label, DATA, "data", str(exc))]
        except (ConfigError, HarnessError) as exc:
            return [Finding(unit.label, CONFIG, f"tasks.{unit.name}", str(exc))]
        except Exception as exc:  # noqa: BLE001 - a config the task's own builder rejects
            return [Finding(unit.label, CONFIG, f"tasks.{unit.name}", f"{type(exc).__name__}: {exc}")]
    return [Finding(unit.label, NOTE, f"tasks.{unit.name}", note) for note in notes]


@contextlib.contextmanager
def _world_env(world: int) -> Iterator[None]:
    """``WORLD_SIZE`` as the unit will see it, while a task builds its config."""
    saved = os.environ.get("WORLD_SIZE")
    os.environ["WORLD_SIZE"] = str(world)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("WORLD_SIZE", None)
        else:
            os.environ["WORLD_SIZE"] = saved


def _planned_device(cfg: dict[str, Any]) -> str:
    return "cpu" if cfg.get("device") == "cpu" else "cuda" if _preset_needs_cuda(cfg) else "cpu"


# ---------------------------------------------------------------- resources
def _preset_needs_cuda(cfg: dict[str, Any]) -> bool:
    from harness.core import config as config_mod

    return bool(config_mod.load_preset(cfg["preset"]).get("requires_cuda")) and cfg.get("device") != "cpu"


def _cuda_findings(cfg: dict[str, Any], launcher: str) -> list[Finding]:
    if launcher == "slurm" or not _preset_needs_cuda(cfg):
        return []
    import torch

    if torch.cuda.is_available():
        return []
    return [Finding("run", CONFIG, "device", f"preset {cfg['preset']!r} runs on GPUs and no CUDA device is visible "
                    f"here (use --launcher slurm, or --set device=cpu to run it on this CPU anyway)")]


def planned_bytes(cfg: dict[str, Any], units: list[Any], n_images: int | None) -> dict[str, float]:
    """An estimate of what each unit writes (bytes): stage checkpoints and exports by
    trunk size, dense-task checkpoints, CAM masks and ORL's RoI store by image count."""
    method = cfg["method"]
    params = ARCH_PARAMS_M.get(method_arch(method) or "resnet50", 25.6) * 1e6
    out: dict[str, float] = {}
    for unit in units:
        if unit.kind == "stage":
            size = STAGE_COPIES * 4 * params
            cam = method.get("cam") if unit.name == "cam_boxes" else None
            if isinstance(cam, dict) and n_images:
                size += n_images * int(cam.get("image_size", 224)) ** 2
            corr = method.get("correspondence") if unit.name == "correspondence" else None
            if isinstance(corr, dict) and n_images:
                size += n_images * int(corr.get("top_n", 100)) * 2048 * (2 if corr.get("roi_dtype") == "float16" else 4)
            out[unit.label] = size
        elif registry.task_entry(unit.task).framework in ("mmdet", "mmseg"):
            out[unit.label] = DENSE_TASK_GB.get(str(unit.cfg.get("arch")), 1.2) * GB
    return out


def _disk_findings(cfg: dict[str, Any], units: list[Any], out_dir: Path, data_root: Path | None) -> list[Finding]:
    n_images = None
    if data_root is not None:
        dirs = next(_data_sections(cfg["method"]), {}).get("dirs") or ()
        n_images = sum(len(list((Path(data_root) / d).glob("*"))) for d in dirs if (Path(data_root) / d).is_dir())
    need = sum(planned_bytes(cfg, units, n_images).values())
    probe = Path(out_dir)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need > free:
        return [Finding("run", CONFIG, str(out_dir), f"about {need / GB:.1f} GB of checkpoints and artifacts are "
                        f"planned and {free / GB:.1f} GB are free there (choose another --out)")]
    return [Finding("run", NOTE, str(out_dir), f"planned artifacts about {need / GB:.1f} GB; {free / GB:.1f} GB free")]
