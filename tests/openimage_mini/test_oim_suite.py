"""The openimage-mini suite: its three tasks' tiny presets on the synthetic benchmark's
Open-Images-style files (default size), the checks of a built copy, and the suite's
resolution into three task units."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import torchvision
import yaml

from harness.core import config, registry
from harness.api import TaskContext
from harness.data.fileio import MalformedDataError, MissingDataError
from harness.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
TASKS = ("oim_cls", "oim_det", "oim_seg")
N_CLASSES = 9  # the synthetic benchmark's object classes, all frequent enough for spec-tiny


@pytest.fixture(scope="session")
def oi_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with only the synthetic benchmark's Open Images files (seed 0, size
    default: 200 train / 100 validation images), written once per session."""
    from harness.data.synthetic.build import run_job
    from harness.data.synthetic.sizes import DEFAULT_BIAS

    root = tmp_path_factory.mktemp("oim-data")
    run_job("openimages", root, 0, "default", DEFAULT_BIAS)
    return root


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("oim-cache")


@pytest.fixture
def cache(session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The harness cache (OpenImage-MINI builds, feature caches) in a session folder."""
    monkeypatch.setenv("HARNESS_CACHE", str(session_cache))
    return session_cache


@pytest.fixture(scope="session")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    state = {k: v for k, v in torchvision.models.resnet18().state_dict().items() if not k.startswith("fc.")}
    path = tmp_path_factory.mktemp("oim-backbone") / "backbone.pth"
    torch.save(state, path)
    return path


def tiny(task: str, **overrides) -> dict:
    cfg = dict(yaml.safe_load((REPO / "benchmarks" / "tasks" / f"{task}.yaml").read_text())["presets"]["tiny"])
    cfg.update(overrides)
    return cfg


def run_task(task: str, data_root: Path, workdir: Path, backbone: Path, **overrides):
    ctx = TaskContext(name=task, cfg=tiny(task, **overrides), workdir=workdir, data_root=data_root, seed=0,
                      device="cpu", preset="tiny", task=task, backbone=backbone)
    return registry.load_task(task).run(ctx)


def built_copy(oi_root: Path, dest_root: Path) -> Path:
    """``dest_root/openimage_mini``: a copy of the tiny-spec build, which ``ensure`` then
    uses as a prebuilt dataset (images stay symlinks to the Open Images files)."""
    from harness.data.openimage_mini.ensure import ensure

    built = ensure(oi_root, "benchmarks/openimage_mini/spec-tiny.yaml")
    out = dest_root / "openimage_mini"
    shutil.copytree(built, out, symlinks=True, ignore=shutil.ignore_patterns(".work", ".lock"))
    return out


def check_metrics(result, names: set[str]) -> None:
    assert names <= set(result.metrics)
    for name, value in result.metrics.items():
        assert math.isfinite(value) and 0.0 <= value <= 100.0, (name, value)
        assert result.higher_is_better[name] is True


# --------------------------------------------------------------------------- suite
def test_suite_resolves_to_three_task_units(tmp_path: Path) -> None:
    from harness.run.runner import plan

    cfg = config.resolve("mocov2", "openimage-mini", preset="tiny")
    assert list(cfg["tasks"]) == list(TASKS)
    assert {c["spec"] for c in cfg["tasks"].values()} == {"benchmarks/openimage_mini/spec-tiny.yaml"}
    assert cfg["tasks"]["oim_cls"]["dataset"] == "openimage_mini"
    units = [u for u in plan(cfg) if u.kind == "task"]
    assert [u.name for u in units] == list(TASKS) and [u.task for u in units] == list(TASKS)
    assert len({u.key for u in units}) == 3
    paper = config.resolve("mocov2", "openimage-mini", preset="paper", data_root=str(tmp_path))
    assert {c["spec"] for c in paper["tasks"].values()} == {"benchmarks/openimage_mini/spec.yaml"}
    for task in TASKS:
        entry = registry.task_entry(task)
        assert entry.main_metrics and registry.load_task(task).name == task


# --------------------------------------------------------------------------- data
def test_crops_follow_classes_json_with_an_empty_class(oi_root: Path, tmp_path: Path, cache: Path) -> None:
    from harness.data.registry import load_probe_splits

    built = built_copy(oi_root, tmp_path)
    names = [c["name"] for c in json.loads((built / "classes.json").read_text())]
    assert len(names) == N_CLASSES
    emptied = names[3]
    for crop in (built / "crops" / "val" / emptied).iterdir():
        crop.unlink()
    splits = load_probe_splits("openimage_mini", tmp_path, {})
    assert splits.train.classes == names and splits.test.classes == names and splits.val is None
    assert 3 not in {label for _, label in splits.test.samples}
    assert {label for _, label in splits.train.samples} == set(range(N_CLASSES))
    assert all(path.parent.name == names[label] for path, label in splits.train.samples)


def test_dataset_checks_name_the_broken_file(oi_root: Path, tmp_path: Path, cache: Path) -> None:
    from harness.tasks.mm.oim_data import check_oim_instances, check_oim_semantic

    built = built_copy(oi_root, tmp_path)
    inst, sem = check_oim_instances(tmp_path), check_oim_semantic(tmp_path)
    assert inst.root == built and len(inst.classes) == N_CLASSES
    assert sem.classes[0] == "background" and len(sem.classes) == N_CLASSES + 1
    assert inst.sizes == sem.sizes and inst.fingerprint != sem.fingerprint

    victim = sorted((built / "seg" / "val").iterdir())[0]
    victim.unlink()
    with pytest.raises(MissingDataError, match=victim.name):
        check_oim_semantic(tmp_path)

    ann = built / "annotations" / "instances_val.json"
    data = json.loads(ann.read_text())
    data["categories"][0]["name"] = "renamed"
    ann.write_text(json.dumps(data))
    with pytest.raises(MalformedDataError, match="instances_val.json: categories"):
        check_oim_instances(tmp_path)

    classes = json.loads((built / "classes.json").read_text())
    classes[1]["name"] = classes[0]["name"]
    (built / "classes.json").write_text(json.dumps(classes))
    with pytest.raises(MalformedDataError, match="classes.json: duplicate class names"):
        check_oim_semantic(tmp_path)


def test_extra_metrics_must_be_known() -> None:
    from harness.tasks.linear_probe import extra_metrics

    assert extra_metrics(tiny("oim_cls")) == ["mean_per_class"]
    with pytest.raises(ConfigError, match="extra_metrics"):
        extra_metrics({"extra_metrics": ["top5"]})


# --------------------------------------------------------------------------- tasks
def test_oim_cls_tiny(oi_root: Path, tmp_path: Path, cache: Path, backbone: Path) -> None:
    result = run_task("oim_cls", oi_root, tmp_path / "work", backbone)
    check_metrics(result, {"top1", "mean_per_class"})
    assert set(result.metrics) == {"top1", "mean_per_class"}
    assert result.metrics["top1"] > 2 * 100.0 / N_CLASSES  # frozen random features still beat chance on crops
    sizes = result.dataset["sizes"]
    assert sizes["probe_train"] + sizes["probe_val"] == sizes["train"] and sizes["test"] > 0


@pytest.mark.slow
def test_oim_det_tiny(oi_root: Path, tmp_path: Path, cache: Path, backbone: Path) -> None:
    result = run_task("oim_det", oi_root, tmp_path / "work", backbone)
    check_metrics(result, {"bbox_AP", "bbox_AP50", "bbox_AP75", "segm_AP", "segm_AP50", "segm_AP75"})
    assert result.framework["name"] == "mmdet" and result.dataset["classes"] == N_CLASSES
    assert result.extra["backbone_verified"] is True


@pytest.mark.slow
def test_oim_seg_tiny(oi_root: Path, tmp_path: Path, cache: Path, backbone: Path) -> None:
    result = run_task("oim_seg", oi_root, tmp_path / "work", backbone)
    check_metrics(result, {"mIoU", "mAcc", "aAcc"})
    assert result.framework["name"] == "mmseg" and result.dataset["classes"] == N_CLASSES + 1
    assert result.extra["backbone_verified"] is True
    assert result.metrics["aAcc"] > result.metrics["mIoU"]  # background dominates the pixels


def test_a_prefix_build_is_the_head_of_the_full_builds_selection(oi_root: Path, cache: Path) -> None:
    from harness.data.openimage_mini import readers, spec as spec_mod
    from harness.data.openimage_mini.ensure import built, ensure

    spec_file = "benchmarks/openimage_mini/spec-tiny.yaml"
    full = readers.read_manifest(ensure(oi_root, spec_file))
    assert not built(oi_root, spec_file, 3)
    prefix_root = ensure(oi_root, spec_file, 3)
    prefix = readers.read_manifest(prefix_root)
    assert built(oi_root, spec_file, 3) and prefix_root != ensure(oi_root, spec_file)
    assert prefix["classes"] == full["classes"] and readers.read_classes(prefix_root) == \
        [c["name"] for c in json.loads((prefix_root / readers.CLASSES_FILE).read_text())]
    for split in readers.SPLITS:
        assert len(full["selected"][split]) > 3 and prefix["selected"][split] == full["selected"][split][:3]
        assert sorted(p.stem for p in readers.image_dir(prefix_root, split).iterdir()) == \
            sorted(prefix["selected"][split])
    assert prefix["spec"]["prefix_of"] == full["spec_hash"] == spec_mod.spec_hash(
        spec_mod.load_spec(REPO / spec_file))
    with pytest.raises(ConfigError, match="at least one image"):
        spec_mod.prefix_spec(full["spec"], 0)


def test_fast_dev_run_builds_a_prefix_and_runs_every_oim_task(oi_root: Path, cache: Path, tmp_path: Path) -> None:
    """The suite in a fast dev run: no task is left out, each builds (or reuses) the
    4-image prefix, trains one step and tests on the dev-run images."""
    import subprocess
    import sys

    from harness.results.store import load_records

    out = tmp_path / "runs"
    res = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--method", "random", "--suite", "openimage-mini",
                          "--data-root", str(oi_root), "--out", str(out), "--fast-dev-run", "1",
                          "--dev-run-images", "4"], capture_output=True, text=True, cwd=REPO, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "not run in a fast dev run" not in res.stdout
    records = load_records(out / "dev-run" / "records", kind="task")
    assert sorted(records["task"]) == sorted(TASKS) and set(records["status"]) == {"ok"}
    det = records[records["task"] == "oim_det"].iloc[0]
    assert det["extra"]["iters"] == 1 and det["dataset"]["size"] == {"train": 4, "val": 4}
    build = Path(det["dataset"]["root"])
    assert build.parent == cache / "openimage_mini"
    assert yaml.safe_load((build / "spec.yaml").read_text())["splits"]["train"]["size"] == 4
