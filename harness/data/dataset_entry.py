"""What a dataset entry holds: where it lives, what ``harness data verify`` checks in it, and
how a frozen-feature task splits it (registered in :mod:`harness.data.registry`)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.image_sets import ArrayClassificationSet, ClassificationSet

ImageSet = ClassificationSet | ArrayClassificationSet


@dataclass(frozen=True)
class StreamCheck:
    """Result of a check that streams a file instead of building an image set."""

    path: Path
    rows: int
    files: tuple[Path, ...] = ()  # a few files the rows name, for the decode sample


@dataclass(frozen=True)
class SplitSpec:
    """One split ``harness data verify`` reads and counts."""

    name: str
    load: Callable[[Path], Any]  # data_root -> an image set of harness.data.image_sets, or a StreamCheck
    probe: tuple[str, ...]  # paths relative to the data root; any existing one means "split present"
    official: int | None = None  # size of the real release (images, or rows for CSV checks)
    required: bool = True
    balanced: str = ""  # non-empty: every class must hold as many images; the text says why when not


@dataclass(frozen=True)
class ProbeSplits:
    """A classification dataset's protocol splits for frozen-feature tasks."""

    name: str
    train: ImageSet
    test: ImageSet
    val: ImageSet | None  # the official validation split, if the dataset has one
    metric: str  # top1 | mean_per_class
    border: int = 0  # pixels to cut from every image side before the transform


ProbeLoader = Callable[[Path, dict[str, Any]], ProbeSplits]  # (data_root, task config) -> splits


@dataclass(frozen=True)
class Dataset:
    """Everything the harness knows about one dataset."""

    name: str
    marker: str  # folder relative to the data root whose existence means "dataset present"
    description: str
    splits: tuple[SplitSpec, ...] = ()  # verify's checks; empty for a dataset derived from another's files
    num_classes: int | None = None  # of the real release
    probe: ProbeLoader | None = None  # classification protocol splits, for linear_probe / knn
    aliases: tuple[str, ...] = ()
    probe_reads: tuple[str, ...] = ()  # what ``probe`` reads, as preflight reads (harness.run.preflight_data)
