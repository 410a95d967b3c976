"""Plan-time preflight: every defect class is found before anything is launched, names its
unit and its file or key, exits 3 (data) or 2 (configuration) and writes nothing."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import harness
from harness.core import config
from harness.core.errors import ConfigError
from harness.run import preflight, runner


def run_dry(root: Path, out: Path, *args: str) -> "object":
    return harness("run", "--data-root", str(root), "--out", str(out), "--dry-run", *args)


def test_the_tiny_protocol_passes_on_official_format_data(tiny_root: Path, tmp_path: Path) -> None:
    res = run_dry(tiny_root, tmp_path / "out", "--method", "contracam", "--suite", "all",
                  "--set", "method.batch_size=16")  # the tiny-size benchmark holds 16 training images
    assert res.returncode == 0, res.stderr
    assert "preflight passed: 23 units" in res.stdout
    assert not (tmp_path / "out").exists()


def test_a_missing_split_fails_at_plan_time(broken_root: Path, tmp_path: Path) -> None:
    aug = broken_root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "aug.txt"
    aug.unlink()
    res = run_dry(broken_root, tmp_path / "out", "--method", "mocov2", "--suite", "all")
    assert res.returncode == 3, res.stdout + res.stderr
    lines = [ln.strip() for ln in res.stderr.splitlines() if "aug.txt" in ln]
    assert any(ln.startswith("task voc_seg, task seg_probe.voc:") for ln in lines), res.stderr
    assert "nothing was launched" in res.stderr and not (tmp_path / "out").exists()


def test_a_malformed_annotation_is_read_at_plan_time(broken_root: Path, tmp_path: Path) -> None:
    ann = broken_root / "coco" / "annotations" / "instances_val2017.json"
    ann.write_text("{not json")
    res = run_dry(broken_root, tmp_path / "out", "--method", "mocov2", "--suite", "dense")
    assert res.returncode == 3, res.stderr
    assert "instances_val2017.json" in res.stderr and "task coco_det:" in res.stderr


def test_pretraining_images_are_listed_at_plan_time(broken_root: Path, tmp_path: Path) -> None:
    for image in (broken_root / "coco" / "train2017").iterdir():
        image.unlink()
    res = run_dry(broken_root, tmp_path / "out", "--method", "mocov2", "--suite", "smoke")
    assert res.returncode == 3 and "stage pretrain:" in res.stderr and "train2017" in res.stderr, res.stderr


def test_a_bad_override_fails_at_plan_time(tiny_root: Path, tmp_path: Path) -> None:
    res = run_dry(tiny_root, tmp_path / "out", "--method", "mocov2", "--suite", "dense",
                  "--set", "tasks.coco_det.iters=2")
    assert res.returncode == 2, res.stderr
    assert "task coco_det:" in res.stderr and "milestones [5] must increase inside (0, 2)" in res.stderr


def test_a_dotted_set_addresses_a_task_instance() -> None:
    cfg = config.resolve("mocov2", "all", overrides=["tasks.linear_probe.cub.batch_size=32", "tasks.knn.k=5"])
    assert cfg["tasks"]["linear_probe.cub"]["batch_size"] == 32 and cfg["tasks"]["knn"]["k"] == 5
    assert cfg["tasks"]["linear_probe.pets"]["batch_size"] == 64
    with pytest.raises(ConfigError, match=r"no key 'tasks.linear_probe.cub.batch_sze'.*did you mean batch_size"):
        config.resolve("mocov2", "all", overrides=["tasks.linear_probe.cub.batch_sze=32"])
    with pytest.raises(ConfigError, match=r"no key 'tasks.linear_probe'.*did you mean linear_probe.cub"):
        config.resolve("mocov2", "all", overrides=["tasks.linear_probe.cubb.batch_size=32"])


def test_an_arch_mismatch_between_recipe_and_task_preset(tiny_root: Path, tmp_path: Path) -> None:
    res = run_dry(tiny_root, tmp_path / "out", "--method", "mocov3", "--suite", "dense", "--preset", "paper",
                  "--set", "device=cpu")
    assert res.returncode == 2, res.stderr
    assert "tasks.coco_det.arch: the task preset expects a resnet50 backbone; recipe 'paper' of mocov3 exports " \
           "vit_small_patch16" in res.stderr


def test_a_global_batch_must_split_over_the_launchers_processes(tiny_root: Path) -> None:
    cfg = config.resolve("mocov2", "dense", preset="paper", overrides=["device=cpu", "method.batch_size=16"],
                         data_root=str(tiny_root))
    findings = preflight.check_plan(cfg, runner.plan(cfg), None, worlds=preflight.Worlds(stage=3, task=3))
    where = {f.unit: f.where for f in findings if f.kind == preflight.CONFIG}
    assert where["stage pretrain"] == "method.batch_size" and where["task coco_det"] == "tasks.coco_det.batch_size"


def test_paper_without_a_gpu_is_refused(tiny_root: Path, tmp_path: Path) -> None:
    res = run_dry(tiny_root, tmp_path / "out", "--method", "mocov2", "--suite", "smoke", "--preset", "paper")
    assert res.returncode == 2 and "run: device: preset 'paper' runs on GPUs" in res.stderr, res.stderr


def test_a_missing_data_root_exits_3(tmp_path: Path) -> None:
    res = run_dry(tmp_path / "nowhere", tmp_path / "out", "--method", "mocov2", "--suite", "smoke")
    assert res.returncode == 3 and "data root not found" in res.stderr, res.stderr


def test_disk_estimate_against_free_space(tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from collections import namedtuple

    cfg = config.resolve("orl", "dense", preset="paper", overrides=["device=cpu"], data_root=str(tiny_root))
    units = runner.plan(cfg)
    planned = preflight.planned_bytes(cfg, units, n_images=118_287)
    assert planned["stage correspondence"] > 40 * preflight.GB  # the RoI store of COCO train2017
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10 * preflight.GB, 9 * preflight.GB, preflight.GB))
    findings = preflight.check_plan(cfg, units, None, out=tmp_path)
    assert [f.where for f in findings if f.kind == preflight.CONFIG] == [str(tmp_path)]


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "two"])
def test_fast_dev_run_needs_a_positive_integer(tiny_root: Path, tmp_path: Path, value: str) -> None:
    res = harness("run", "--method", "mocov2", "--suite", "smoke", "--data-root", str(tiny_root),
                  "--out", str(tmp_path / "out"), f"--fast-dev-run={value}")
    assert res.returncode == 2 and "--fast-dev-run" in res.stderr and "positive integer" in res.stderr
    assert not (tmp_path / "out").exists()


def test_data_verify_answers_for_one_suite(tiny_root: Path, broken_root: Path) -> None:
    ok = harness("data", "verify", "--data-root", str(tiny_root), "--suite", "all", "--method", "contracam",
                 "--set", "method.batch_size=16")
    assert ok.returncode == 0 and "OK: suite all at preset tiny can start" in ok.stdout, ok.stdout + ok.stderr
    (broken_root / "bg_challenge" / "mixed_rand").rename(broken_root / "bg_challenge" / "mixed_random")
    bad = harness("data", "verify", "--data-root", str(broken_root), "--suite", "robustness")
    assert bad.returncode == 3, bad.stdout + bad.stderr
    assert "FAILED  task bg_shift" in bad.stdout and "mixed_rand" in bad.stdout


def _imported_checkpoint(path: Path, projector: bool) -> Path:
    """A MoCo-layout ResNet-18 checkpoint, with or without its projection MLP."""
    import torch
    import torchvision

    state = {f"module.encoder_q.{k}": v for k, v in torchvision.models.resnet18().state_dict().items()
             if not k.startswith("fc.")}
    if projector:
        state.update({"module.encoder_q.fc.0.weight": torch.randn(512, 512), "module.encoder_q.fc.0.bias": torch.zeros(512),
                      "module.encoder_q.fc.2.weight": torch.randn(128, 512), "module.encoder_q.fc.2.bias": torch.zeros(128)})
    torch.save({"state_dict": state}, path)
    return path


@pytest.mark.parametrize("projector", [False, True])
def test_cam_localization_of_a_checkpoint_without_projector_fails_at_plan_time(
        tiny_root: Path, tmp_path: Path, projector: bool) -> None:
    ckpt = _imported_checkpoint(tmp_path / "moco.pth.tar", projector)
    res = run_dry(tiny_root, tmp_path / "out", "--method", "imported", "--suite", "all", "--only", "cam_localization",
                  "--set", f"method.checkpoint={ckpt}")
    if projector:
        assert res.returncode == 0, res.stdout + res.stderr
    else:
        assert res.returncode == 3, res.stdout + res.stderr
        assert "task cam_localization" in res.stderr and "projection head" in res.stderr
        assert "--skip cam_localization" in res.stderr


def test_a_checkpoint_that_cannot_be_imported_fails_at_plan_time(tiny_root: Path, tmp_path: Path) -> None:
    import torch

    ckpt = tmp_path / "broken.pth"
    torch.save({"state_dict": {"module.encoder_q.conv1.weight": torch.zeros(64, 3, 7, 7)}}, ckpt)
    res = run_dry(tiny_root, tmp_path / "out", "--method", "imported", "--suite", "smoke",
                  "--set", f"method.checkpoint={ckpt}")
    assert res.returncode == 3, res.stdout + res.stderr
    assert "method imported" in res.stderr and str(ckpt) in res.stderr
