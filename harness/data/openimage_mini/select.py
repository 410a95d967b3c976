"""The annotation pass: stream the Open Images box CSVs (never loaded whole), keep the
needed columns as compact numpy arrays, choose the classes and the images.

Selection is deterministic and independent of row order and machine: images are
ranked by ``splitmix64(ImageID as uint64 ^ mix(seed))``; classes by count then MID.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from harness.data.fileio import MalformedDataError, MissingDataError

BOX_NEEDED = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", "IsGroupOf", "IsDepiction")
_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
_SHIFTS = np.arange(60, -4, -4, dtype=np.uint64)


@dataclass
class BoxRows:
    """Rows of one split's box CSV that survive the column/class pre-filter."""

    image: np.ndarray  # uint64 ImageID
    cls: np.ndarray  # int32 index into ``labels``
    box: np.ndarray  # float32 (n, 4): xmin, ymin, xmax, ymax (normalised)
    group: np.ndarray  # bool
    depiction: np.ndarray  # bool
    labels: list[str]  # MIDs

    @property
    def area(self) -> np.ndarray:
        return (self.box[:, 2] - self.box[:, 0]) * (self.box[:, 3] - self.box[:, 1])


def image_ids_to_u64(ids: np.ndarray, source: Path) -> np.ndarray:
    """(n, 16) uint8 ASCII lowercase hex -> uint64, vectorised; a bad ID is an error."""
    nib = _HEX[ids]
    if (nib == 255).any():
        row = int(np.nonzero((nib == 255).any(axis=1))[0][0])
        raise MalformedDataError(source, f"ImageID {bytes(ids[row]).decode(errors='replace')!r} is not "
                                 "16 lowercase hex digits")
    return (nib.astype(np.uint64) << _SHIFTS).sum(axis=1, dtype=np.uint64)


def u64_to_image_id(v: int) -> str:
    return f"{int(v):016x}"


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def rank_key(images: np.ndarray, seed: int) -> np.ndarray:
    return splitmix64(images ^ splitmix64(np.array([seed], dtype=np.uint64))[0])


def check_header(path: Path, needed: tuple[str, ...], expected: tuple[str, ...] | None = None) -> list[str]:
    """The CSV's header; missing columns (or, with ``expected``, a different column set) are errors."""
    if not path.is_file():
        raise MissingDataError(path, "missing (an Open Images annotation CSV)")
    with open(path, newline="") as fh:
        header = fh.readline().strip().split(",")
    missing = [c for c in needed if c not in header]
    if missing:
        raise MalformedDataError(path, f"missing columns {missing} (header: {header})")
    if expected is not None and tuple(header) != expected:
        extra = [c for c in header if c not in expected]
        raise MalformedDataError(path, f"columns {header} differ from the expected {list(expected)}"
                                 + (f" (unexpected: {extra})" if extra else ""))
    return header


def _batches(path: Path, columns: tuple[str, ...], types: dict[str, Any]) -> Iterator[Any]:
    import pyarrow as pa
    from pyarrow import csv as pacsv

    opts = pacsv.ConvertOptions(include_columns=list(columns), column_types={k: v for k, v in types.items()})
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 25), convert_options=opts)
        for batch in reader:
            yield batch
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise MalformedDataError(path, f"unreadable CSV ({exc})") from exc


def _fixed_ascii(arr: Any, width: int, source: Path, what: str) -> np.ndarray:
    """A pyarrow string array whose values all have ``width`` bytes, as an (n, width) uint8 view."""
    import pyarrow as pa

    arr = arr.cast(pa.string()) if arr.type != pa.string() else arr
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    if arr.null_count or (np.diff(offsets) != width).any():
        raise MalformedDataError(source, f"a {what} value is not {width} characters long")
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    return data.reshape(len(arr), width)


def stream_boxes(path: Path, keep_labels: set[str] | None) -> BoxRows:
    """One pass over a box CSV: the 8 needed columns, rows of ``keep_labels`` only."""
    import pyarrow as pa
    import pyarrow.compute as pc

    check_header(path, BOX_NEEDED)
    types = {"ImageID": pa.string(), "LabelName": pa.string(), "XMin": pa.float32(), "XMax": pa.float32(),
             "YMin": pa.float32(), "YMax": pa.float32(), "IsGroupOf": pa.int8(), "IsDepiction": pa.int8()}
    labels: dict[str, int] = {}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("image", "cls", "box", "group", "depiction")}
    for batch in _batches(path, BOX_NEEDED, types):
        enc = pc.dictionary_encode(batch.column("LabelName"))
        local = [labels.setdefault(str(m), len(labels)) for m in enc.dictionary.to_pylist()]
        codes = np.asarray(local, dtype=np.int32)[enc.indices.to_numpy(zero_copy_only=False)]
        keep = (np.isin(codes, [labels[m] for m in keep_labels if m in labels])
                if keep_labels is not None else np.ones(len(codes), bool))
        if not keep.any():
            continue
        ids = image_ids_to_u64(_fixed_ascii(batch.column("ImageID"), 16, path, "ImageID"), path)
        cols = [batch.column(c).to_numpy(zero_copy_only=False) for c in ("XMin", "YMin", "XMax", "YMax")]
        parts["image"].append(ids[keep])
        parts["cls"].append(codes[keep])
        parts["box"].append(np.stack(cols, axis=1)[keep])
        parts["group"].append(batch.column("IsGroupOf").to_numpy(zero_copy_only=False)[keep] == 1)
        parts["depiction"].append(batch.column("IsDepiction").to_numpy(zero_copy_only=False)[keep] == 1)
    names = sorted(labels, key=labels.get)
    if not parts["image"]:
        empty = np.zeros(0)
        return BoxRows(empty.astype(np.uint64), empty.astype(np.int32), np.zeros((0, 4), np.float32),
                       empty.astype(bool), empty.astype(bool), names)
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return BoxRows(cat["image"], cat["cls"], cat["box"].astype(np.float32), cat["group"], cat["depiction"], names)


def mask_labels(path: Path) -> set[str]:
    """The LabelNames present in a segmentation CSV (streamed, one column)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    check_header(path, ("MaskPath", "ImageID", "LabelName"))
    out: set[str] = set()
    for batch in _batches(path, ("LabelName",), {"LabelName": pa.string()}):
        out.update(pc.unique(batch.column("LabelName")).to_pylist())
    return out


def choose_classes(rows: BoxRows, spec: dict[str, Any], masked: set[str] | None) -> list[str]:
    """Class MIDs per the spec: explicit, or the most frequent valid ones (ties by MID)."""
    cs = spec["classes"]
    if cs["mode"] == "explicit":
        return list(cs["explicit"])
    valid = ~rows.group & ~rows.depiction & (rows.area >= spec["boxes"]["min_area"])
    counts = np.bincount(rows.cls[valid], minlength=len(rows.labels))
    cands = [(int(counts[i]), m) for i, m in enumerate(rows.labels)
             if counts[i] >= cs["min_instances"] and (masked is None or m in masked)]
    cands.sort(key=lambda t: (-t[0], t[1]))
    return [m for _, m in cands[: int(cs["max_classes"])]]


@dataclass
class SplitSelection:
    image_ids: list[str]  # in selection (rank) order
    rows: BoxRows  # valid rows of the selected images and classes, sorted by (image, class, box)


def select_images(rows: BoxRows, classes: list[str], spec: dict[str, Any], size: int, cap: int) -> SplitSelection:
    """Filter rows to the classes, apply the image filter, rank, cap per class, take ``size``."""
    filt = spec["image_filter"]
    index = {m: i for i, m in enumerate(rows.labels)}
    wanted = np.array([index[m] for m in classes if m in index], dtype=np.int32)
    keep = np.isin(rows.cls, wanted)
    img, cls, box = rows.image[keep], rows.cls[keep], rows.box[keep]
    group, dep = rows.group[keep], rows.depiction[keep]
    area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
    valid = ~group & ~dep & (area >= spec["boxes"]["min_area"])
    uniq, inv = np.unique(img, return_inverse=True)
    n_obj = np.bincount(inv, weights=valid, minlength=len(uniq))
    bad = np.zeros(len(uniq), bool)
    if filt.get("exclude_group_of", True):
        bad |= np.bincount(inv, weights=group, minlength=len(uniq)) > 0
    if filt.get("exclude_depiction", True):
        bad |= np.bincount(inv, weights=dep, minlength=len(uniq)) > 0
    pairs = np.unique(inv[valid].astype(np.int64) * (len(rows.labels) + 1) + cls[valid])
    n_cls = np.bincount(pairs // (len(rows.labels) + 1), minlength=len(uniq))
    eligible = np.nonzero((n_obj >= filt["min_objects"]) & (n_cls >= filt["min_classes"]) & ~bad)[0]
    key = rank_key(uniq[eligible], int(spec["seed"]))
    order = eligible[np.lexsort((uniq[eligible], key))]
    # per-image class sets of valid rows (CSR over images)
    vi, vc = inv[valid], cls[valid]
    srt = np.argsort(vi, kind="stable")
    vi, vc = vi[srt], vc[srt]
    starts = np.searchsorted(vi, np.arange(len(uniq) + 1))
    per_class = np.zeros(len(rows.labels), np.int64)
    chosen: list[int] = []
    for u in order:
        if len(chosen) >= size:
            break
        present = np.unique(vc[starts[u]:starts[u + 1]])
        if cap and (per_class[present] >= cap).any():
            continue
        per_class[present] += 1
        chosen.append(int(u))
    chosen_arr = np.array(chosen, dtype=np.int64)
    sel_rows = valid & np.isin(inv, chosen_arr)
    r = np.lexsort((box[sel_rows, 3], box[sel_rows, 2], box[sel_rows, 1], box[sel_rows, 0], cls[sel_rows],
                    img[sel_rows]))
    out_rows = BoxRows(img[sel_rows][r], cls[sel_rows][r], box[sel_rows][r], group[sel_rows][r], dep[sel_rows][r],
                       rows.labels)
    return SplitSelection([u64_to_image_id(uniq[u]) for u in chosen], out_rows)
