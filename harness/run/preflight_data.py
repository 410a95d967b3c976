"""What a unit will read under the data root, and the check of it with the datasets' readers.

A task's catalog file lists the dataset splits it reads under ``reads``. Each entry is a
*read*:

- ``DATASET:SPLIT``: a split of a registered dataset (:mod:`harness.data.registry`),
  checked like ``harness data verify`` checks it (the split's reader runs over every
  annotation file and every file it lists, and a sample of its images is decoded);
- ``DATASET:probe``: the splits the frozen-feature probes read of a classification
  dataset (its ``probe_reads``);
- ``folder:PATH``: a folder under the data root that must exist;
- ``images:PATH``: a ``<class>/<image>`` folder under the data root, read with the
  image-folder reader and a sample of its images decoded;
- ``A|B``: the first alternative whose dataset (or folder) is present, else ``A``.

``{key}`` in an entry is replaced by the unit's config value ``key``; a list value gives
one entry per element. An entry (or ``reads`` itself) may also be a mapping keyed by a
config key whose value chooses the reads: ``{dataset: {voc: [...], ade20k: [...]}}`` (a
list value takes the union). The key ``preset`` chooses by the run's preset.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")
PROBE = "probe"
FOLDER = "folder"
IMAGES = "images"


@dataclass(frozen=True)
class ReadProblem:
    """A read that cannot be served: the file and what was expected there."""

    read: str
    path: str
    detail: str


def unit_reads(reads: Any, cfg: dict[str, Any], task: str) -> list[str]:
    """The dataset reads of one task unit, with ``{key}`` values and config-chosen lists filled in."""
    if reads is None:
        return []
    if isinstance(reads, dict):
        return _chosen(reads, cfg, task)
    if not isinstance(reads, list):
        raise ConfigError(f"task {task}: 'reads' must be a list or a mapping, got {type(reads).__name__}")
    out: list[str] = []
    for entry in reads:
        found = _chosen(entry, cfg, task) if isinstance(entry, dict) else _expand(str(entry), cfg, task)
        out.extend(r for r in found if r not in out)
    return out


def _chosen(table: dict[str, Any], cfg: dict[str, Any], task: str) -> list[str]:
    """``{KEY: {VALUE: [reads]}}``: the reads of each value the config gives ``KEY``."""
    if len(table) != 1:
        raise ConfigError(f"task {task}: a 'reads' mapping takes one config key, got {sorted(table)}")
    key, by_value = next(iter(table.items()))
    if key not in cfg:
        raise ConfigError(f"task {task}: 'reads' is keyed by {key!r}, which its config lacks")
    out: list[str] = []
    for value in cfg[key] if isinstance(cfg[key], list) else [cfg[key]]:
        if value not in by_value:
            raise ConfigError(f"task {task}: {key}={value!r} has no entry under 'reads' (known: {sorted(by_value)})")
        out.extend(r for r in unit_reads(by_value[value], cfg, task) if r not in out)
    return out


def _expand(entry: str, cfg: dict[str, Any], task: str) -> list[str]:
    match = _PLACEHOLDER.search(entry)
    if match is None:
        return [entry]
    key = match.group(1)
    if key not in cfg:
        raise ConfigError(f"task {task}: read {entry!r} names config key {key!r}, which its config lacks")
    values = cfg[key] if isinstance(cfg[key], list) else [cfg[key]]
    return [r for v in values for r in _expand(entry[:match.start()] + str(v) + entry[match.end():], cfg, task)]


class _ImageFolder:
    """An ``images:PATH`` read as a dataset split that verify can check."""

    name, marker, description, num_classes = "images", "", "a <class>/<image> folder", None


class ReadChecker:
    """Checks reads under one data root; each split is read once however many units need it."""

    def __init__(self, data_root: Path, sample: int = 2):
        self.root, self.sample = Path(data_root), sample
        self._done: dict[str, list[ReadProblem]] = {}

    def check(self, read: str) -> list[ReadProblem]:
        """The problems of one read (empty when it can be served)."""
        if read not in self._done:
            self._done[read] = self._check(read)
        return self._done[read]

    def expand(self, read: str) -> list[str]:
        """A read with ``probe`` and ``|`` resolved into plain ``DATASET:SPLIT`` / folder reads."""
        options = read.split("|")
        chosen = next((o for o in options if self._present(o)), options[0])
        name, _, split = chosen.partition(":")
        if split == PROBE:
            from harness.data.registry import get_dataset

            dataset = get_dataset(name)
            if not dataset.probe_reads:
                raise ConfigError(f"dataset {dataset.name!r} lists no probe_reads for preflight")
            return [r for item in dataset.probe_reads for r in self.expand(item)]
        return [chosen]

    def _present(self, read: str) -> bool:
        name, _, rest = read.partition(":")
        if name in (FOLDER, IMAGES):
            return (self.root / rest).is_dir()
        from harness.data.registry import get_dataset

        return (self.root / get_dataset(name).marker).is_dir()

    def _check(self, read: str) -> list[ReadProblem]:
        from harness.data.registry import get_dataset
        from harness.data.verify import verify_split

        problems: list[ReadProblem] = []
        for item in self.expand(read):
            name, sep, split_name = item.partition(":")
            if not sep or not split_name:
                raise ConfigError(f"read {item!r}: expected DATASET:SPLIT, DATASET:probe or folder:PATH")
            if name == FOLDER:
                if not (self.root / split_name).is_dir():
                    problems.append(ReadProblem(item, str(self.root / split_name), "folder not found"))
                continue
            if name == IMAGES:
                problems.extend(self._image_folder(item, self.root / split_name))
                continue
            dataset = get_dataset(name)
            split = next((s for s in dataset.splits if s.name == split_name), None)
            if split is None:
                raise ConfigError(f"read {item!r}: dataset {dataset.name!r} has no split {split_name!r} "
                                  f"(splits: {', '.join(s.name for s in dataset.splits)})")
            probes = [self.root / p for p in split.probe]
            if not any(p.exists() for p in probes):
                problems.append(ReadProblem(item, " or ".join(map(str, probes)),
                                            f"{dataset.description}, split {split_name}: not found"))
                continue
            problems.extend(_problems(item, verify_split(self.root, dataset, split, self.sample)))
        return problems

    def _image_folder(self, read: str, folder: Path) -> list[ReadProblem]:
        from harness.data.folders import read_image_folder
        from harness.data.registry import SplitSpec
        from harness.data.verify import verify_split

        if not folder.is_dir():
            return [ReadProblem(read, str(folder), "folder not found")]
        split = SplitSpec(folder.name, lambda _root: read_image_folder(folder, folder.name), (str(folder),))
        return _problems(read, verify_split(self.root, _ImageFolder(), split, self.sample))


def _problems(read: str, rows: list[Any]) -> list[ReadProblem]:
    """The missing or malformed rows of ``harness data verify`` as problems of ``read``."""
    from harness.data.verify import PROBLEMS

    return [ReadProblem(read, row.path, f"{row.check}: {row.detail or row.status}") for row in rows
            if row.status in PROBLEMS]
