"""The annotation pass: one streaming pass over an Open Images box CSV (never loaded
whole), then the class and image selection on sorted integer keys.

Selection is deterministic and independent of row order and machine: images are
ranked by :func:`~harness.data.openimage_mini.rankkey.rank_key` (seeded splitmix64 of the
ImageID, a bijection); classes by count then MID.

The streaming query (polars, parallel) parses the 8 needed columns and turns each box
into two uint64 values: its image's rank key and the sort key
``rank >> 12 << 12 | label code << 2 | flags`` (flag bit 0: a valid instance, bit 1: a box
that excludes its image), dropping boxes that can change nothing. One ``np.sort`` of the
sort keys lays every image's boxes out contiguously, in rank order, so the per-image
counts are one ``reduceat``. A sort of the rank keys checks that no two images share a
truncated key; when two do, an exact (slower) lexicographic sort groups the boxes instead.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.fileio import MalformedDataError, MissingDataError
from harness.data.openimage_mini.capwalk import capped_walk
from harness.data.openimage_mini.rankkey import rank_key_expr, unrank_key
from harness.data.openimages import BOX_COLUMNS, CLICK_COLUMNS

BOX_LAYOUTS = (BOX_COLUMNS, BOX_COLUMNS + CLICK_COLUMNS)  # 13 columns; the train file's 21
BOX_NEEDED = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", "IsGroupOf", "IsDepiction")
PAYLOAD_BITS = 12  # low bits of a sort key: label code (10 bits) and the 2 flags
MAX_LABELS = 1 << (PAYLOAD_BITS - 2)
VALID, EXCLUDING = 1, 2
FIRST_VALID = 1 << PAYLOAD_BITS  # row index bit: the first valid box of its (image, label)
FIELD = 21  # bits per count packed into one uint64 for the per-image reduceat


def u64_to_image_id(v: int) -> str:
    return f"{int(v):016x}"


def check_header(path: Path, needed: tuple[str, ...], layouts: tuple[tuple[str, ...], ...] = ()) -> list[str]:
    """The CSV's header; missing columns (or, with ``layouts``, a column list that is none of them) are errors."""
    if not path.is_file():
        raise MissingDataError(path, "missing (an Open Images annotation CSV)")
    with open(path, newline="") as fh:
        header = fh.readline().strip().split(",")
    missing = [c for c in needed if c not in header]
    if missing:
        raise MalformedDataError(path, f"missing columns {missing} (header: {header})")
    if layouts and tuple(header) not in layouts:
        extra = [c for c in header if all(c not in cols for cols in layouts)]
        raise MalformedDataError(path, f"columns {header} are none of the Open Images layouts "
                                       f"{[list(cols) for cols in layouts]}"
                                 + (f" (unexpected: {extra})" if extra else ""))
    return header


@dataclass(frozen=True)
class BoxFilter:
    """The spec entries that decide, box by box, what the streaming pass keeps."""

    seed: int
    min_area: float
    exclude_group_of: bool
    exclude_depiction: bool
    keep_irrelevant: bool  # no per-image minimum: boxes neither valid nor excluding still count

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> BoxFilter:
        f = spec["image_filter"]
        return cls(int(spec["seed"]), float(spec["boxes"]["min_area"]), bool(f.get("exclude_group_of", True)),
                   bool(f.get("exclude_depiction", True)), f["min_objects"] <= 0 and f["min_classes"] <= 0)


@dataclass
class BoxRows:
    """Valid instances as arrays."""

    image: np.ndarray  # uint64 ImageID
    cls: np.ndarray  # int32 index into ``labels``
    box: np.ndarray  # float32 (n, 4): xmin, ymin, xmax, ymax (normalised)
    labels: list[str]  # MIDs


@dataclass
class _Groups:
    """The kept boxes sorted by (image rank, label code, flags)."""

    image_rank: np.ndarray  # uint64 rank key of each image, ascending
    starts: np.ndarray  # int64 first sorted box of each image
    n_boxes: np.ndarray  # int64 boxes of each image
    row_index: np.ndarray  # uint16 per sorted box: label code << 2 | flags | FIRST_VALID


@dataclass
class BoxTable:
    """One split's box CSV after the streaming pass."""

    path: Path
    filter: BoxFilter
    labels: list[str]  # MIDs in the file (after ``keep_labels``), sorted
    code_index: np.ndarray  # int32 label code -> index into ``labels`` (-1: not kept)
    frame: Any  # polars DataFrame of the kept boxes: rank, key, XMin, YMin, XMax, YMax
    shift: int = PAYLOAD_BITS  # an image is identified by ``key >> shift`` when that is unambiguous
    _groups: dict[int, _Groups] = field(default_factory=dict, repr=False)

    @property
    def groups(self) -> _Groups:
        if self.shift not in self._groups:
            self._groups.clear()
            self._groups[self.shift] = _group(self.frame, self.shift, self.path)
        return self._groups[self.shift]

    def valid_counts(self) -> np.ndarray:
        """Valid instances per label (index into ``labels``)."""
        per_payload = np.bincount(self.groups.row_index & (FIRST_VALID - 1), minlength=FIRST_VALID)
        per_code = per_payload.reshape(MAX_LABELS, 4)[: len(self.code_index), VALID]
        counts = np.zeros(len(self.labels), np.int64)
        kept = self.code_index >= 0
        counts[self.code_index[kept]] = per_code[kept]
        return counts


def stream_boxes(path: Path, spec: dict[str, Any], keep_labels: set[str] | None = None) -> BoxTable:
    """One streaming pass over a box CSV (polars, projection pushdown): per kept box its
    image's rank key, its sort key and its coordinates. Only labels in ``keep_labels``
    (all when None) take part in the selection."""
    import polars as pl

    check_header(path, BOX_NEEDED, BOX_LAYOUTS)
    flt = BoxFilter.from_spec(spec)
    categories = pl.Categories.random()
    f32 = pl.Float32
    q = pl.scan_csv(path, schema_overrides={
        "ImageID": pl.String, "LabelName": pl.Categorical(categories), "XMin": f32, "XMax": f32, "YMin": f32,
        "YMax": f32, "IsGroupOf": pl.Int8, "IsDepiction": pl.Int8})
    img = pl.col("ImageID")
    image = pl.when(img.str.len_bytes() == 16).then(img.str.to_integer(base=16, dtype=pl.UInt64, strict=False))
    group, depiction = (pl.col("IsGroupOf") == 1).fill_null(False), (pl.col("IsDepiction") == 1).fill_null(False)
    area = (pl.col("XMax") - pl.col("XMin")) * (pl.col("YMax") - pl.col("YMin"))
    valid = (~group & ~depiction & (area >= flt.min_area)).fill_null(False)
    excluding = (group & flt.exclude_group_of) | (depiction & flt.exclude_depiction)
    q = q.with_columns(flags=valid.cast(pl.UInt64) * VALID + excluding.cast(pl.UInt64) * EXCLUDING, image=image,
                       sane=_sane_row().fill_null(False))
    if not flt.keep_irrelevant:
        q = q.filter((pl.col("flags") > 0) | pl.col("image").is_null() | pl.col("LabelName").is_null()
                     | ~pl.col("sane"))
    unit = pl.lit(1 << PAYLOAD_BITS, dtype=pl.UInt64)
    code = pl.col("LabelName").to_physical().cast(pl.UInt64)
    key = pl.when(pl.col("sane")).then(pl.col("rank") // unit * unit + code * 4 + pl.col("flags"))
    q = q.with_columns(rank=rank_key_expr(pl.col("image"), flt.seed)).select(
        "rank", key.alias("key"), "XMin", "YMin", "XMax", "YMax")
    try:
        frame = q.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise MalformedDataError(path, f"unreadable CSV ({str(exc).splitlines()[0]})") from exc
    if frame["key"].null_count():
        _raise_first_bad_row(path)
    names = categories.to_series().to_list()
    if len(names) > MAX_LABELS:
        raise MalformedDataError(path, f"{len(names)} distinct LabelNames; an Open Images box CSV has at most "
                                       f"{MAX_LABELS} (600 boxable classes)")
    labels = sorted(m for m in names if m is not None and (keep_labels is None or m in keep_labels))
    index = {m: i for i, m in enumerate(labels)}
    code_index = np.array([index.get(m, -1) if m is not None else -1 for m in names], dtype=np.int32)
    return BoxTable(path, flt, labels, code_index, frame)


def _sane_row() -> Any:
    """A box row's coordinates satisfy 0 <= min <= max <= 1 and its flags are 1, 0 or -1."""
    import polars as pl

    x0, x1, y0, y1 = (pl.col(c) for c in ("XMin", "XMax", "YMin", "YMax"))
    flags_ok = pl.col("IsGroupOf").is_in([-1, 0, 1]) & pl.col("IsDepiction").is_in([-1, 0, 1])
    return (x0 >= 0) & (x0 <= x1) & (x1 <= 1) & (y0 >= 0) & (y0 <= y1) & (y1 <= 1) & flags_ok


def _raise_first_bad_row(path: Path) -> None:
    """Name the first box row with an unusable ImageID, an empty LabelName, a box outside
    the image or a flag outside {1, 0, -1} (error path only)."""
    import polars as pl

    img = pl.col("ImageID")
    bad_id = (img.str.len_bytes() != 16) | img.str.to_integer(base=16, dtype=pl.UInt64, strict=False).is_null()
    q = (pl.scan_csv(path, schema_overrides={"ImageID": pl.String, "LabelName": pl.String, "XMin": pl.Float32,
                                             "XMax": pl.Float32, "YMin": pl.Float32, "YMax": pl.Float32,
                                             "IsGroupOf": pl.Int8, "IsDepiction": pl.Int8})
         .with_row_index("row", offset=1)
         .select("row", "XMin", "XMax", "YMin", "YMax", "IsGroupOf", "IsDepiction", bad_id=bad_id.fill_null(True),
                 no_label=pl.col("LabelName").is_null(), insane=~_sane_row().fill_null(False))
         .filter(pl.col("bad_id") | pl.col("no_label") | pl.col("insane")).head(1))
    first = q.collect(engine="streaming").row(0, named=True)
    if first["bad_id"]:
        raise MalformedDataError(path, f"ImageID of box row {first['row']} is not 16 hex digits")
    if first["no_label"]:
        raise MalformedDataError(path, f"LabelName of box row {first['row']} is empty")
    values = ", ".join(f"{c}={first[c]:.6g}" if first[c] is not None else f"{c}=(empty)"
                       for c in ("XMin", "XMax", "YMin", "YMax", "IsGroupOf", "IsDepiction"))
    raise MalformedDataError(path, f"box row {first['row']}: {values}; expected 0 <= min <= max <= 1 and "
                                   "flags in {1, 0, -1}")


def _sorted_copy(column: Any) -> np.ndarray:
    a = column.to_numpy()
    a = a if a.flags.writeable else a.copy()
    a.sort()
    return a


def _group(frame: Any, shift: int, path: Path) -> _Groups:
    """Sort the boxes by image: by the packed keys when ``key >> shift`` tells the images
    apart (checked against the sorted exact ranks), else by an exact lexsort."""
    with ThreadPoolExecutor(2) as pool:
        keys_job, ranks_job = pool.submit(_sorted_copy, frame["key"]), pool.submit(_sorted_copy, frame["rank"])
        keys, ranks = keys_job.result(), ranks_job.result()
    mask = np.uint64(FIRST_VALID - 1)
    new = np.empty(len(keys), bool)
    new[:1] = True
    np.not_equal(ranks[1:], ranks[:-1], out=new[1:])
    image_rank = ranks[new]
    del ranks
    hi = keys >> np.uint64(shift)
    np.not_equal(hi[1:], hi[:-1], out=new[1:])
    del hi
    if np.count_nonzero(new) == len(image_rank):
        payload = (keys & mask).astype(np.uint16)
    else:  # two images share a truncated key
        rank = frame["rank"].to_numpy()
        unsorted = (frame["key"].to_numpy() & mask).astype(np.uint16)
        order = np.lexsort((unsorted, rank))
        payload, rank = unsorted[order], rank[order]
        np.not_equal(rank[1:], rank[:-1], out=new[1:])
    del keys
    starts = np.flatnonzero(new)
    n_boxes = np.diff(np.r_[starts, len(new)])
    if len(n_boxes) and n_boxes.max() >= 1 << FIELD:
        raise MalformedDataError(path, f"an image has {n_boxes.max()} boxes (at most {(1 << FIELD) - 1} supported)")
    first_valid = new
    first_valid[1:] |= payload[1:] != payload[:-1]
    first_valid &= (payload & VALID) != 0
    row_index = payload | (first_valid.astype(np.uint16) << PAYLOAD_BITS)
    return _Groups(image_rank, starts, n_boxes, row_index)


def mask_labels(path: Path) -> set[str]:
    """The LabelNames present in a segmentation CSV (streamed, one column)."""
    import polars as pl

    check_header(path, ("MaskPath", "ImageID", "LabelName"))
    q = pl.scan_csv(path, schema_overrides={"LabelName": pl.String}).select(pl.col("LabelName").unique())
    return set(q.collect(engine="streaming")["LabelName"].to_list())


def _check_filter(table: BoxTable, spec: dict[str, Any]) -> None:
    if BoxFilter.from_spec(spec) != table.filter:
        raise ValueError(f"{table.path} was streamed for {table.filter}, not for this spec")


def choose_classes(table: BoxTable, spec: dict[str, Any], masked: set[str] | None) -> list[str]:
    """Class MIDs per the spec: explicit, or the most frequent valid ones (ties by MID)."""
    cs = spec["classes"]
    if cs["mode"] == "explicit":
        absent = [m for m in cs["explicit"] if m not in table.labels or (masked is not None and m not in masked)]
        if absent:
            raise MalformedDataError(table.path, f"classes.explicit names {absent}, which have no boxes here"
                                     + (" or no segmentation masks" if masked is not None else ""))
        return list(cs["explicit"])
    _check_filter(table, spec)
    counts = table.valid_counts()
    cands = [(int(counts[i]), m) for i, m in enumerate(table.labels)
             if counts[i] >= cs["min_instances"] and (masked is None or m in masked)]
    cands.sort(key=lambda t: (-t[0], t[1]))
    return [m for _, m in cands[: int(cs["max_classes"])]]


@dataclass
class SplitSelection:
    image_ids: list[str]  # in selection (rank) order
    rows: BoxRows  # valid rows of the selected images and classes, sorted by (image, class, box)


def select_images(table: BoxTable, classes: list[str], spec: dict[str, Any], size: int, cap: int) -> SplitSelection:
    """Apply the image filter to the images with boxes of ``classes``, rank them, cap per
    class, take ``size``; return them with their valid boxes of those classes."""
    _check_filter(table, spec)
    filt = spec["image_filter"]
    index = {m: i for i, m in enumerate(table.labels)}
    wanted = [index[m] for m in classes if m in index]
    label_to_wanted = np.full(len(table.labels) + 1, -1, np.int64)  # the last entry answers index -1
    label_to_wanted[wanted] = np.arange(len(wanted))
    code_to_wanted = np.full(MAX_LABELS, -1, np.int64)
    code_to_wanted[: len(table.code_index)] = label_to_wanted[table.code_index]
    g = table.groups
    # per row index (label code << 2 | flags | FIRST_VALID): packed (valid, excluding, first valid) counts
    idx = np.arange(2 * FIRST_VALID, dtype=np.uint64)
    is_wanted = code_to_wanted[(idx >> np.uint64(2)) % MAX_LABELS] >= 0
    first_valid = (idx >> np.uint64(PAYLOAD_BITS)) & np.uint64(1)
    packed = ((idx & np.uint64(VALID)) | ((idx & np.uint64(EXCLUDING)) >> np.uint64(1) << np.uint64(FIELD))
              | first_valid << np.uint64(2 * FIELD)) * is_wanted
    field_mask = np.uint64((1 << FIELD) - 1)
    sums = np.add.reduceat(packed[g.row_index], g.starts) if len(g.starts) else np.zeros(0, np.uint64)
    n_obj, n_classes = (sums & field_mask).astype(np.int64), (sums >> np.uint64(2 * FIELD)).astype(np.int64)
    excluded = (sums >> np.uint64(FIELD)) & field_mask > 0
    eligible = (n_obj >= filt["min_objects"]) & (n_classes >= filt["min_classes"]) & ~excluded
    if table.filter.keep_irrelevant:  # only images with boxes of the classes
        eligible &= np.add.reduceat(is_wanted[g.row_index], g.starts, dtype=np.int64) > 0
    pairs = np.flatnonzero(np.repeat(eligible, g.n_boxes) & (is_wanted & (first_valid == 1))[g.row_index])
    pair_class = code_to_wanted[(g.row_index[pairs] >> 2) % MAX_LABELS]
    indptr = np.r_[0, np.cumsum(n_classes[eligible])]
    picked = capped_walk(indptr, pair_class, len(wanted), size, cap)
    ranks = g.image_rank[np.flatnonzero(eligible)[picked]]
    image_ids = [u64_to_image_id(v) for v in unrank_key(ranks, table.filter.seed)]
    return SplitSelection(image_ids, _selected_rows(table, ranks, np.flatnonzero(code_to_wanted >= 0)))


def _selected_rows(table: BoxTable, ranks: np.ndarray, codes: np.ndarray) -> BoxRows:
    """The valid boxes of the images ``ranks`` and label ``codes``, sorted by (image, class, box)."""
    import polars as pl

    code = (pl.col("key") // 4) % MAX_LABELS
    sel = table.frame.filter(pl.col("rank").is_in(pl.Series(ranks, dtype=pl.UInt64).implode())
                             & (pl.col("key") % 4 == VALID)
                             & code.is_in(pl.Series(codes, dtype=pl.UInt64).implode()))
    sel = sel.select(image=pl.Series(unrank_key(sel["rank"].to_numpy(), table.filter.seed), dtype=pl.UInt64),
                     cls=pl.Series(table.code_index[sel.select(code)["key"].to_numpy()], dtype=pl.Int32),
                     x0="XMin", y0="YMin", x1="XMax", y1="YMax").sort("image", "cls", "x0", "y0", "x1", "y1")
    box = sel.select("x0", "y0", "x1", "y1").to_numpy().astype(np.float32).reshape(-1, 4)
    return BoxRows(sel["image"].to_numpy(), sel["cls"].to_numpy().astype(np.int32), box, table.labels)
