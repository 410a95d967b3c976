"""The annotation pass: stream the Open Images box CSVs (never loaded whole), keep the
needed columns as compact numpy arrays, choose the classes and the images.

Selection is deterministic and independent of row order and machine: images are
ranked by ``splitmix64(ImageID as uint64 ^ mix(seed))``; classes by count then MID.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.fileio import MalformedDataError, MissingDataError

BOX_NEEDED = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", "IsGroupOf", "IsDepiction")


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


def stream_boxes(path: Path, keep_labels: set[str] | None) -> BoxRows:
    """One streaming pass over a box CSV (polars, projection pushdown): the 8 needed
    columns, rows of ``keep_labels`` only, ImageIDs parsed to uint64."""
    import polars as pl

    check_header(path, BOX_NEEDED)
    f32, i8 = pl.Float32, pl.Int8
    q = pl.scan_csv(path, schema_overrides={"ImageID": pl.String, "LabelName": pl.String, "XMin": f32, "XMax": f32,
                                            "YMin": f32, "YMax": f32, "IsGroupOf": i8, "IsDepiction": i8})
    if keep_labels is not None:
        q = q.filter(pl.col("LabelName").is_in(pl.Series(sorted(keep_labels), dtype=pl.String).implode()))
    img = pl.col("ImageID")
    q = q.select(img.str.to_integer(base=16, dtype=pl.UInt64, strict=False).alias("image"),
                 (img.str.len_bytes() != 16).alias("bad_id"),
                 pl.col("LabelName").alias("label"),
                 "XMin", "YMin", "XMax", "YMax", pl.col("IsGroupOf") == 1, pl.col("IsDepiction") == 1)
    try:
        df = q.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise MalformedDataError(path, f"unreadable CSV ({str(exc).splitlines()[0]})") from exc
    if df["bad_id"].any() or df["image"].null_count():
        row = int(df["bad_id"].arg_max() or 0)
        if not df["bad_id"].any():
            row = int(df["image"].is_null().arg_max() or 0)
        raise MalformedDataError(path, f"ImageID of box row {row + 1} is not 16 hex digits")
    labels = sorted(df["label"].unique().to_list())
    codes = df["label"].cast(pl.Enum(labels)).to_physical().to_numpy().astype(np.int32)
    return BoxRows(df["image"].to_numpy(), codes,
                   df.select("XMin", "YMin", "XMax", "YMax").to_numpy().astype(np.float32),
                   df["IsGroupOf"].to_numpy(), df["IsDepiction"].to_numpy(), labels)


def mask_labels(path: Path) -> set[str]:
    """The LabelNames present in a segmentation CSV (streamed, one column)."""
    import polars as pl

    check_header(path, ("MaskPath", "ImageID", "LabelName"))
    q = pl.scan_csv(path, schema_overrides={"LabelName": pl.String}).select(pl.col("LabelName").unique())
    return set(q.collect(engine="streaming")["LabelName"].to_list())


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
    import polars as pl

    filt = spec["image_filter"]
    index = {m: i for i, m in enumerate(rows.labels)}
    wanted = [index[m] for m in classes if m in index]
    df = pl.DataFrame({"image": rows.image, "cls": rows.cls, "group": rows.group, "dep": rows.depiction,
                       "x0": rows.box[:, 0], "y0": rows.box[:, 1], "x1": rows.box[:, 2], "y1": rows.box[:, 3]})
    df = df.filter(pl.col("cls").is_in(pl.Series(wanted, dtype=pl.Int32).implode())).with_columns(
        valid=~pl.col("group") & ~pl.col("dep")
        & ((pl.col("x1") - pl.col("x0")) * (pl.col("y1") - pl.col("y0")) >= spec["boxes"]["min_area"]))
    excluded = pl.lit(False)
    if filt.get("exclude_group_of", True):
        excluded = excluded | pl.col("group").any()
    if filt.get("exclude_depiction", True):
        excluded = excluded | pl.col("dep").any()
    per_image = df.group_by("image").agg(
        n_obj=pl.col("valid").sum(), excluded=excluded,
        present=pl.col("cls").filter(pl.col("valid")).unique().sort())
    eligible = per_image.filter((pl.col("n_obj") >= filt["min_objects"])
                                & (pl.col("present").list.len() >= filt["min_classes"]) & ~pl.col("excluded"))
    images = eligible["image"].to_numpy()
    order = np.lexsort((images, rank_key(images, int(spec["seed"]))))
    present = eligible["present"]
    per_class: dict[int, int] = {}
    chosen: list[int] = []
    for u in order.tolist():
        if len(chosen) >= size:
            break
        cls_here = present[u].to_list() if cap else ()
        if cap and any(per_class.get(c, 0) >= cap for c in cls_here):
            continue
        for c in cls_here:
            per_class[c] = per_class.get(c, 0) + 1
        chosen.append(u)
    chosen_ids = images[np.array(chosen, dtype=np.int64)] if chosen else np.zeros(0, np.uint64)
    sel = (df.filter(pl.col("valid") & pl.col("image").is_in(pl.Series(chosen_ids, dtype=pl.UInt64).implode()))
           .sort("image", "cls", "x0", "y0", "x1", "y1"))
    box = sel.select("x0", "y0", "x1", "y1").to_numpy().astype(np.float32).reshape(-1, 4)
    out_rows = BoxRows(sel["image"].to_numpy(), sel["cls"].to_numpy().astype(np.int32), box,
                       sel["group"].to_numpy(), sel["dep"].to_numpy(), rows.labels)
    return SplitSelection([u64_to_image_id(v) for v in chosen_ids], out_rows)
