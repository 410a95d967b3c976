"""One registration point per dataset: a :class:`Dataset` entry says where the dataset
lives under a data root, what ``harness data verify`` checks in it, and how a
frozen-feature classification task (``linear_probe``, ``knn``) splits it.

The entry types live in :mod:`harness.data.dataset_entry` (importable from here too). The
built-in entries are :data:`harness.data.catalog.BUILTIN`; a plugin adds its own with
:func:`register_dataset` (from a module named in ``$HARNESS_PLUGINS``, which every unit
process imports too). A config may name an entry or one of its ``aliases`` (e.g.
``flowers`` for ``flowers102``: the name its probe records carry).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError
from harness.core.registry import import_env_plugins, unknown
from harness.data.dataset_entry import (Dataset, ImageSet, ProbeLoader, ProbeSplits, SplitSpec,  # noqa: F401
                                        StreamCheck)

_ENTRIES: dict[str, Dataset] = {}
_NAMES: dict[str, str] = {}  # name or alias -> entry name


def register_dataset(dataset: Dataset) -> Dataset:
    """Add ``dataset``; a name or alias another entry already uses is refused."""
    _load_builtin()
    _add(dataset)
    return dataset


def _add(dataset: Dataset) -> None:
    taken = [n for n in (dataset.name, *dataset.aliases) if n in _NAMES]
    if taken:
        raise ConfigError(f"dataset {dataset.name!r}: name {taken[0]!r} is already registered "
                          f"(by {_NAMES[taken[0]]!r})")
    _ENTRIES[dataset.name] = dataset
    _NAMES.update({n: dataset.name for n in (dataset.name, *dataset.aliases)})


def _load_builtin() -> None:
    if not _ENTRIES:
        from harness.data.catalog import BUILTIN

        for dataset in BUILTIN:
            _add(dataset)


def datasets() -> dict[str, Dataset]:
    """Every registered dataset by name: the built-in ones, then plugins'."""
    _load_builtin()
    import_env_plugins()
    return dict(_ENTRIES)


def get_dataset(name: str) -> Dataset:
    """The entry called ``name`` or with ``name`` as an alias."""
    datasets()
    if name not in _NAMES:
        raise unknown("dataset", name, list(_NAMES))
    return _ENTRIES[_NAMES[name]]


def probe_names() -> list[str]:
    """The names (entries and aliases) a classification probe accepts."""
    datasets()
    return sorted(n for n, entry in _NAMES.items() if _ENTRIES[entry].probe is not None)


def load_probe_splits(name: str, data_root: Path, cfg: dict[str, Any] | None = None) -> ProbeSplits:
    """The protocol splits of classification dataset ``name`` under ``data_root`` (``cfg``: the task config)."""
    datasets()
    if name not in _NAMES or _ENTRIES[_NAMES[name]].probe is None:
        raise unknown("classification dataset", name, probe_names())
    return _ENTRIES[_NAMES[name]].probe(Path(data_root), cfg or {})
