"""Readers of the CIFAR-10 / CIFAR-100 "python version" pickles.

Own reader rather than torchvision's: those check the md5 sums of the official archive and
reject any other (e.g. generated) files. Unpickling is restricted to the numpy classes an
array needs, so a data root cannot run code.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from harness.data import layout
from harness.data.fileio import MalformedDataError, require_file
from harness.data.image_sets import ArrayClassificationSet

SPLITS = ("train", "test")  # 50,000 / 10,000
CIFAR10_FILES = {"train": tuple(f"data_batch_{k}" for k in range(1, 6)), "test": ("test_batch",)}
CIFAR100_FILES = {"train": ("train",), "test": ("test",)}

_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"), ("numpy", "dtype"),
            ("_codecs", "encode")}  # Python 3 writes bytes this way under pickle protocol 2


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR pickle")
        return super().find_class(module, name)


def load_pickle(path: Path, what: str) -> dict[str, Any]:
    """A CIFAR pickle as a dict with ``str`` keys (the files were written by Python 2 with byte keys)."""
    require_file(path, what)
    try:
        with path.open("rb") as f:
            data = _ArrayUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise MalformedDataError(path, f"unreadable pickle ({exc}); expected {what}") from exc
    if not isinstance(data, dict):
        raise MalformedDataError(path, f"pickle holds {type(data).__name__}; expected a dict ({what})")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def read_cifar10(data_root: Path, split: str) -> ArrayClassificationSet:
    """CIFAR-10 ``split`` from ``cifar-10-batches-py`` (data_batch_1..5 / test_batch, names in batches.meta)."""
    root = Path(data_root) / layout.CIFAR10
    classes = _names(root / "batches.meta", "label_names")
    return _read(root, _files(CIFAR10_FILES, split), "labels", classes, f"cifar10_{split}")


def read_cifar100(data_root: Path, split: str) -> ArrayClassificationSet:
    """CIFAR-100 ``split`` from ``cifar-100-python`` (train / test) with the 100 fine labels (names in meta)."""
    root = Path(data_root) / layout.CIFAR100
    classes = _names(root / "meta", "fine_label_names")
    return _read(root, _files(CIFAR100_FILES, split), "fine_labels", classes, f"cifar100_{split}")


def _files(files: dict[str, tuple[str, ...]], split: str) -> tuple[str, ...]:
    if split not in files:
        raise ValueError(f"unknown CIFAR split {split!r}; expected one of {SPLITS}")
    return files[split]


def _names(path: Path, key: str) -> list[str]:
    meta = load_pickle(path, f"a CIFAR meta pickle with {key!r}")
    names = meta.get(key)
    if not isinstance(names, list) or not names:
        raise MalformedDataError(path, f"{key!r} missing or empty; expected the list of class names")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _read(root: Path, files: tuple[str, ...], label_key: str, classes: list[str], name: str) -> ArrayClassificationSet:
    images, labels = [], []
    for file_name in files:
        path = root / file_name
        batch = load_pickle(path, f"a CIFAR batch with 'data' and {label_key!r}")
        data, batch_labels = batch.get("data"), batch.get(label_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise MalformedDataError(path, f"'data' is {getattr(data, 'shape', type(data).__name__)} "
                                           f"{getattr(data, 'dtype', '')}; expected uint8 (N, 3072)")
        batch_labels = np.asarray(batch_labels if batch_labels is not None else [], dtype=np.int64)
        if batch_labels.shape != (data.shape[0],):
            raise MalformedDataError(path, f"{label_key!r} has {batch_labels.size} entries; expected {data.shape[0]}")
        if batch_labels.size and (batch_labels.min() < 0 or batch_labels.max() >= len(classes)):
            raise MalformedDataError(path, f"{label_key!r} values {batch_labels.min()}..{batch_labels.max()}; "
                                           f"expected 0..{len(classes) - 1}")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(batch_labels)
    return ArrayClassificationSet(name=name, root=root, classes=classes, images=np.concatenate(images),
                                  labels=np.concatenate(labels))
