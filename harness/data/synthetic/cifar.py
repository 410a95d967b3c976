"""CIFAR-10 / CIFAR-100 "python version" pickles of 32x32 single-object images.

The files are protocol-2 pickles whose text (dict keys, label names, file names) is
stored as Python 2 ``str``, exactly like the real files: ``pickle.load(f,
encoding="bytes")`` gives ``b"data"``-style keys and ``encoding="latin1"`` gives str
keys, so both common readers work. ``data`` is a uint8 (N, 3072) array (R, G, B planes,
row-major); labels are lists of ints. The label space is the nine synthetic classes
(CIFAR-100: nine fine labels under three coarse groups). torchvision's own CIFAR
classes check md5 sums and therefore reject these files; read them with pickle.
"""
from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np

from harness.data import layout
from harness.data.layout import SYNTHETIC_CLASSES

from .backgrounds import FAMILIES
from .common import stream
from .plan import render_single
from .sizes import Sizes

SIDE = 32
N_BATCHES = 5
COARSE = {"food": ("banana", "broccoli", "orange", "pizza"), "object": ("backpack", "kite", "toaster", "vase"),
          "animal": ("zebra",)}
COARSE_NAMES = tuple(COARSE)


class Py2Str(bytes):
    """Bytes that pickle as a Python 2 ``str`` (SHORT_BINSTRING / BINSTRING)."""


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us add one opcode writer
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2str(self, obj: Py2Str) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + bytes(obj))
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + bytes(obj))
        self.memoize(obj)

    dispatch[Py2Str] = save_py2str


def py2_pickle(obj: object, path: Path) -> None:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def _s(text: str) -> Py2Str:
    return Py2Str(text.encode("latin1"))


def render_set(seed: int, name: str, per_class: int) -> tuple[np.ndarray, list[int], list[str]]:
    """Shuffled (N, 3072) uint8 rows, labels and file names."""
    rows, labels, names = [], [], []
    for k, c in enumerate(SYNTHETIC_CLASSES):
        for i in range(per_class):
            rng = stream(seed, "cifar", name, k, i)
            family = FAMILIES[int(rng.integers(len(FAMILIES)))]
            s = render_single(rng, k, SIDE, SIDE, family, size=(0.3, 0.95), rotation=(-45.0, 45.0), jitter=0.25)
            rows.append(s.image.transpose(2, 0, 1).reshape(-1))
            labels.append(k)
            names.append(f"{c}_s_{1000 * k + i:06d}.png")
    order = stream(seed, "cifar-order", name).permutation(len(rows))
    return np.stack(rows)[order], [labels[j] for j in order], [names[j] for j in order]


def write_cifar(root: Path, seed: int, sz: Sizes) -> dict[str, int]:
    c10 = root / layout.CIFAR10
    n_train = 0
    for b in range(1, N_BATCHES + 1):
        data, labels, names = render_set(seed, f"10-train{b}", sz.cifar_train_per_batch)
        py2_pickle({_s("batch_label"): _s(f"training batch {b} of {N_BATCHES}"), _s("labels"): labels, _s("data"): data,
                    _s("filenames"): [_s(n) for n in names]}, c10 / f"data_batch_{b}")
        n_train += len(labels)
    data, labels, names = render_set(seed, "10-test", sz.cifar_test_per_class)
    py2_pickle({_s("batch_label"): _s("testing batch 1 of 1"), _s("labels"): labels, _s("data"): data,
                _s("filenames"): [_s(n) for n in names]}, c10 / "test_batch")
    py2_pickle({_s("num_cases_per_batch"): sz.cifar_train_per_batch * len(SYNTHETIC_CLASSES),
                _s("label_names"): [_s(c) for c in SYNTHETIC_CLASSES], _s("num_vis"): SIDE * SIDE * 3}, c10 / "batches.meta")
    n_test = len(labels)

    c100 = root / layout.CIFAR100
    coarse_of = {c: COARSE_NAMES.index(g) for g, members in COARSE.items() for c in members}
    counts = {"cifar-10 train": n_train, "cifar-10 test": n_test}
    for split, per_class, label in (("train", sz.cifar_train_per_batch * N_BATCHES, "training batch 1 of 1"),
                                    ("test", sz.cifar_test_per_class, "testing batch 1 of 1")):
        data, labels, names = render_set(seed, f"100-{split}", per_class)
        counts[f"cifar-100 {split}"] = len(labels)
        py2_pickle({_s("filenames"): [_s(n) for n in names], _s("batch_label"): _s(label),
                    _s("fine_labels"): labels, _s("coarse_labels"): [coarse_of[SYNTHETIC_CLASSES[k]] for k in labels],
                    _s("data"): data}, c100 / split)
    py2_pickle({_s("fine_label_names"): [_s(c) for c in SYNTHETIC_CLASSES],
                _s("coarse_label_names"): [_s(g) for g in COARSE_NAMES]}, c100 / "meta")
    return counts
