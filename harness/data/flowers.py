"""Reader of Oxford Flowers-102 (imagelabels.mat, setid.mat) and its ReDO localization split."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.data import layout
from harness.data.fileio import MalformedDataError, require_dir, require_file, require_listed_files
from harness.data.image_sets import ClassificationSet, MaskSet

SPLIT_KEYS = {"train": "trnid", "val": "valid", "test": "tstid"}  # 1,020 / 1,020 / 6,149
# ReDO (and ContraCAM) evaluate masks on the 1,020 trnid images and train on tstid.
REDO_SPLIT_KEYS = {"train": "tstid", "val": "valid", "test": "trnid"}


def flowers_dir(data_root: Path) -> Path:
    """``<data_root>/flowers-102``."""
    return Path(data_root) / layout.FLOWERS


def image_path(root: Path, image_id: int) -> Path:
    """``jpg/image_<5-digit id>.jpg`` (ids are 1-based)."""
    return root / "jpg" / f"image_{image_id:05d}.jpg"


def read_labels(data_root: Path) -> np.ndarray:
    """``imagelabels.mat`` ``labels``: class 1..102 of image id k at index k - 1."""
    path = flowers_dir(data_root) / "imagelabels.mat"
    labels = _mat_vector(path, "labels")
    if labels.size == 0 or labels.min() < 1:
        raise MalformedDataError(path, "labels: expected class ids starting at 1")
    return labels


def read_split_ids(data_root: Path, key: str) -> np.ndarray:
    """1-based image ids stored under ``key`` (trnid / valid / tstid) in ``setid.mat``."""
    path = flowers_dir(data_root) / "setid.mat"
    ids = _mat_vector(path, key)
    if ids.size == 0 or ids.min() < 1:
        raise MalformedDataError(path, f"{key}: expected 1-based image ids")
    return ids


def read_flowers(data_root: Path, split: str) -> ClassificationSet:
    """Read Flowers-102 ``split`` ("train" = trnid, "val" = valid, "test" = tstid).

    Labels are ``imagelabels.mat`` values minus 1; ``classes`` are the 1-based class numbers
    as strings (the release ships no class names).
    """
    if split not in SPLIT_KEYS:
        raise ValueError(f"unknown Flowers-102 split {split!r}; expected one of {sorted(SPLIT_KEYS)}")
    root = flowers_dir(data_root)
    labels = read_labels(data_root)
    ids = read_split_ids(data_root, SPLIT_KEYS[split])
    if ids.max() > labels.size:
        raise MalformedDataError(root / "setid.mat", f"{SPLIT_KEYS[split]}: image id {ids.max()} beyond the "
                                                     f"{labels.size} labels of imagelabels.mat")
    require_dir(root / "jpg", "Flowers-102 jpg/image_<id>.jpg files")
    samples = [(image_path(root, i), int(labels[i - 1]) - 1) for i in ids.tolist()]
    require_listed_files([p for p, _ in samples], "the image of an id listed in setid.mat")
    classes = [str(k) for k in range(1, int(labels.max()) + 1)]
    return ClassificationSet(name=f"flowers102_{split}", root=root, classes=classes, samples=samples)


def read_flowers_localization(data_root: Path, split: str = "test") -> MaskSet:
    """Flowers image / ``segmim/segmim_<id>.jpg`` pairs of the ReDO ``split`` (test = trnid, 1,020 images)."""
    if split not in REDO_SPLIT_KEYS:
        raise ValueError(f"unknown ReDO split {split!r}; expected one of {sorted(REDO_SPLIT_KEYS)}")
    root = flowers_dir(data_root)
    ids = read_split_ids(data_root, REDO_SPLIT_KEYS[split]).tolist()
    samples = [(image_path(root, i), root / "segmim" / f"segmim_{i:05d}.jpg") for i in ids]
    require_listed_files([s[0] for s in samples], "the image of an id listed in setid.mat")
    require_listed_files([s[1] for s in samples], "the segmim mask of an image (segmim/segmim_<id>.jpg)")
    return MaskSet(name=f"flowers102_redo_{split}", root=root, samples=samples, mask_format="flowers_segmim")


def _mat_vector(path: Path, key: str) -> np.ndarray:
    """Integer vector ``key`` of a MATLAB file (stored as a 1 x N matrix)."""
    from scipy.io import loadmat  # scipy is only needed for this format

    require_file(path, f"a MATLAB file with {key!r}")
    try:
        mat = loadmat(path)
    except (ValueError, TypeError, OSError, NotImplementedError) as exc:  # the last: MATLAB v7.3 (HDF5) files
        raise MalformedDataError(path, f"unreadable MATLAB file ({exc}); expected {key!r}") from exc
    if key not in mat:
        raise MalformedDataError(path, f"no variable {key!r}; found {sorted(k for k in mat if not k.startswith('__'))}")
    values = np.asarray(mat[key])
    if values.ndim != 2 or 1 not in values.shape or not np.issubdtype(values.dtype, np.number):
        raise MalformedDataError(path, f"{key}: shape {values.shape} {values.dtype}; expected a numeric 1 x N vector")
    flat = values.ravel()
    if not np.all(flat == np.round(flat)):
        raise MalformedDataError(path, f"{key}: non-integer values; expected integers")
    return flat.astype(np.int64)
