"""Fixtures of the dense-task tests: the synthetic benchmark (official layouts), a ResNet-18
backbone file, and task contexts with the catalog's presets."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import yaml

from harness.api import TaskContext

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dense_root(tmp_path_factory) -> Path:
    """The tiny synthetic benchmark: COCO, VOCdevkit and ADEChallengeData2016 among others."""
    from harness.data.synthetic import generate

    root = tmp_path_factory.mktemp("synthetic")
    generate(root, seed=0, size="tiny")
    return root


def make_backbone(path: Path, arch: str = "resnet18", seed: int = 0) -> Path:
    """A torchvision ResNet state dict without fc (what a method exports)."""
    import torchvision

    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)()
    torch.save({k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}, path)
    return path


@pytest.fixture(scope="session")
def backbone_r18(tmp_path_factory) -> Path:
    return make_backbone(tmp_path_factory.mktemp("backbone") / "backbone.pth")


@pytest.fixture(scope="module")
def backbone_vit(tmp_path_factory) -> Path:
    """A random ViT-T/16 backbone file for 64-px images (what a ViT method exports)."""
    import torch

    from harness.core.checkpoints import save_backbone
    from harness.core.vit import build_vit

    torch.manual_seed(0)
    return save_backbone(build_vit("vit_tiny_patch16", 64), tmp_path_factory.mktemp("vit"),
                         {"arch": "vit_tiny_patch16", "img_size": 64, "method": "random"})


def _catalog(task: str) -> dict:
    return yaml.safe_load((REPO / "benchmarks" / "tasks" / f"{task}.yaml").read_text())


def make_ctx(task: str, workdir: Path, data_root: Path, backbone: Path, preset: str = "tiny",
             progress=None, **overrides) -> TaskContext:
    cfg = dict(_catalog(task)["presets"][preset])
    cfg.update(overrides)
    kwargs = {"progress": progress} if progress is not None else {}
    return TaskContext(name=task, cfg=cfg, workdir=workdir, data_root=data_root, seed=0, device="cpu",
                       preset=preset, task=task, backbone=backbone, **kwargs)


@pytest.fixture
def mm_ctx():
    """``mm_ctx(task, workdir, data_root, backbone, preset="tiny", progress=None, **overrides)``."""
    return make_ctx


@pytest.fixture
def task_entry():
    """``task_entry(task)``: the Task class the catalog's ``entry`` names."""

    def load(task: str):
        module, name = _catalog(task)["entry"].split(":")
        return getattr(importlib.import_module(module), name)

    return load
