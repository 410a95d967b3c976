"""The dataset registry: one entry per dataset serves verify and the classification probes,
names and aliases resolve to it, and a plugin's entry is used by both."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.errors import ConfigError
from harness.data import registry
from harness.data.registry import Dataset, get_dataset, load_probe_splits, register_dataset
from harness.data.verify import verify

# The names the suites' probe tasks and their committed records use: renaming one would
# change every such unit key.
PROBE_NAMES = {"coco_crop", "in9", "cub", "flowers", "food", "pets", "cifar10", "cifar100", "openimage_crops",
               "openimage_mini"}


def test_probe_names_are_stable_and_resolve_to_verified_entries() -> None:
    assert PROBE_NAMES <= set(registry.probe_names())
    assert get_dataset("flowers") is get_dataset("flowers102")
    assert get_dataset("in9").name == "bg_challenge"
    assert get_dataset("openimage_crops").name == "openimages"


def test_probe_splits_carry_the_name_asked_for(synthetic_root: Path) -> None:
    for name, metric in (("flowers", "mean_per_class"), ("flowers102", "mean_per_class"), ("in9", "top1")):
        splits = load_probe_splits(name, synthetic_root)
        assert splits.metric == metric and splits.train.samples and splits.test.samples
    assert load_probe_splits("flowers102", synthetic_root).name == "flowers"  # the name its records carry


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown classification dataset 'flower'.*did you mean 'flowers'"):
        load_probe_splits("flower", Path("."))
    with pytest.raises(ConfigError, match="unknown classification dataset 'voc2012_seg'"):
        load_probe_splits("voc2012_seg", Path("."))  # registered, but not a classification dataset
    with pytest.raises(ConfigError, match="unknown dataset 'imagenet'"):
        get_dataset("imagenet")


def test_a_taken_name_or_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match="'cub' is already registered"):
        register_dataset(Dataset("birds", "birds", "another", aliases=("cub",)))
    assert "birds" not in registry.datasets()


def test_verify_refuses_a_dataset_without_files_of_its_own(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="openimage_mini.*no files of its own"):
        verify(tmp_path, "openimage_mini")


PLUGIN = """
from pathlib import Path

from harness.data.fileio import MissingDataError
from harness.data.image_sets import ClassificationSet
from harness.data.registry import Dataset, ProbeSplits, SplitSpec, register_dataset


def read(root):
    base = Path(root) / "shapes"
    if not base.is_dir():
        raise MissingDataError(base, "missing: the shapes folder")
    classes = sorted(p.name for p in base.iterdir())
    samples = [(f, i) for i, c in enumerate(classes) for f in sorted((base / c).iterdir())]
    return ClassificationSet("shapes", base, classes, samples)


def probe(root, cfg):
    return ProbeSplits("shapes", read(root), read(root), None, "top1")


register_dataset(Dataset("shapes", "shapes", "toy shapes", (SplitSpec("all", read, ("shapes",)),), num_classes=2,
                         probe=probe, aliases=("toy_shapes",)))
"""


@pytest.fixture
def plugin_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root with a dataset that a ``$HARNESS_PLUGINS`` module registers."""
    from PIL import Image

    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "shapes_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    monkeypatch.setenv("HARNESS_PLUGINS", "shapes_plugin")
    monkeypatch.setattr(registry, "_ENTRIES", dict(registry._ENTRIES))
    monkeypatch.setattr(registry, "_NAMES", dict(registry._NAMES))
    monkeypatch.delitem(sys.modules, "shapes_plugin", raising=False)
    root = tmp_path / "data"
    for c in ("circle", "square"):
        (root / "shapes" / c).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(root / "shapes" / c / f"{i}.png")
    yield root
    sys.modules.pop("shapes_plugin", None)


def test_a_plugin_dataset_is_verified_and_probed(plugin_root: Path) -> None:
    rows = [r for r in verify(plugin_root) if r.dataset == "shapes"]
    assert [r.status for r in rows if r.check.startswith("read")] == ["ok"], rows
    splits = load_probe_splits("toy_shapes", plugin_root)
    assert splits.train.classes == ["circle", "square"] and len(splits.test.samples) == 4


def test_the_cli_verifies_a_plugin_dataset(plugin_root: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin_root.parent / "plugins"),
                                                       os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "harness.cli", "data", "verify", "--data-root", str(plugin_root)]
    ok = subprocess.run(cmd + ["--dataset", "toy_shapes"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "shapes" in ok.stdout, ok.stdout + ok.stderr
    broken = plugin_root / "shapes" / "square" / "1.png"
    broken.write_bytes(b"not a png")
    bad = subprocess.run(cmd + ["--dataset", "shapes", "--sample", "4"], env=env, capture_output=True, text=True)
    assert bad.returncode == 3 and "malformed" in bad.stdout and str(broken) in bad.stdout, bad.stdout + bad.stderr
