"""Checked file access for the dataset readers: every failure names the file and what was expected.

``MissingDataError`` and ``MalformedDataError`` are ``DataError`` subclasses carrying the
offending ``path``, so ``harness data verify`` can report missing versus malformed files.
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.core.errors import DataError


class DataFileError(DataError):
    """A dataset file problem tied to one path."""

    kind = "malformed"

    def __init__(self, path: Path | str, detail: str) -> None:
        self.path = Path(path)
        self.detail = detail
        super().__init__(f"{self.path}: {detail}")

    def __reduce__(self) -> tuple[type, tuple[Path, str]]:
        """Rebuild from ``(path, detail)`` so the error survives a process pool."""
        return type(self), (self.path, self.detail)


class MissingDataError(DataFileError):
    """A file or folder the format requires does not exist."""

    kind = "missing"


class MalformedDataError(DataFileError):
    """A file exists but its content is not what the format requires."""

    kind = "malformed"


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it is a file, else raise ``MissingDataError`` describing ``what``."""
    if not path.is_file():
        raise MissingDataError(path, f"missing; expected {what}")
    return path


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a folder, else raise ``MissingDataError`` describing ``what``."""
    if not path.is_dir():
        raise MissingDataError(path, f"missing folder; expected {what}")
    return path


def file_names(folder: Path) -> set[str]:
    """Names of the regular files directly inside ``folder`` (one directory scan)."""
    with os.scandir(folder) as entries:
        return {e.name for e in entries if e.is_file()}


def sub_dirs(folder: Path) -> list[str]:
    """Sorted names of the folders directly inside ``folder``."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir())


def require_listed_files(paths: Sequence[Path], what: str) -> None:
    """Raise ``MissingDataError`` for the first path in ``paths`` that is not an existing file.

    Scans each parent folder once, so checking 100k images costs a few directory reads.
    """
    listing: dict[Path, set[str]] = {}
    for path in paths:
        parent = path.parent
        if parent not in listing:
            listing[parent] = file_names(parent) if parent.is_dir() else set()
        if path.name not in listing[parent]:
            raise MissingDataError(path, f"missing; expected {what}")


def read_text(path: Path, what: str) -> str:
    """Whole text of a required UTF-8 file."""
    require_file(path, what)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedDataError(path, f"not UTF-8 text ({exc}); expected {what}") from exc


def read_lines(path: Path, what: str) -> list[str]:
    """Non-empty, stripped lines of a required text file."""
    return [line.strip() for line in read_text(path, what).splitlines() if line.strip()]


def read_fields(path: Path, what: str, n_fields: int, sep: str | None = None) -> list[list[str]]:
    """Rows of a whitespace (or ``sep``) separated text file with exactly ``n_fields`` fields."""
    rows = []
    for lineno, line in enumerate(read_text(path, what).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(sep) if sep else line.split()
        if len(fields) != n_fields:
            raise MalformedDataError(
                path, f"line {lineno}: {len(fields)} fields, expected {n_fields} ({what}): {line!r}")
        rows.append([f.strip() for f in fields])
    return rows


def parse_int(text: str, path: Path, where: str) -> int:
    """``int(text)`` or a ``MalformedDataError`` naming the file and location."""
    try:
        return int(text)
    except (TypeError, ValueError) as exc:
        raise MalformedDataError(path, f"{where}: expected an integer, got {text!r}") from exc


def parse_float(text: str, path: Path, where: str) -> float:
    """``float(text)`` or a ``MalformedDataError`` naming the file and location."""
    try:
        return float(text)
    except (TypeError, ValueError) as exc:
        raise MalformedDataError(path, f"{where}: expected a number, got {text!r}") from exc


def read_json(path: Path, what: str) -> Any:
    """Parsed JSON of a required file."""
    require_file(path, what)
    try:
        with path.open("rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedDataError(path, f"invalid JSON ({exc}); expected {what}") from exc


def iter_csv(path: Path, what: str, required: Sequence[str],
             optional: Sequence[str] = (), exact: bool = False) -> Iterator[dict[str, str]]:
    """Stream the rows of a headed CSV file as dicts, checking the header first.

    The header must contain every ``required`` column; with ``exact`` it may hold nothing
    but ``required`` and ``optional`` columns. Rows are read one at a time (constant memory).
    """
    require_file(path, what)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise MalformedDataError(path, f"empty file; expected a CSV header for {what}") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise MalformedDataError(path, f"unreadable CSV header ({exc}); expected {what}") from exc
        header = [h.strip().lstrip("\ufeff") for h in header]
        missing = [c for c in required if c not in header]
        unexpected = [c for c in header if c not in required and c not in optional] if exact else []
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing columns {missing}")
            if unexpected:
                parts.append(f"unexpected columns {unexpected}")
            raise MalformedDataError(
                path, f"{'; '.join(parts)}; expected columns {list(required) + list(optional)} ({what})")
        width = len(header)
        try:
            for row in reader:
                if not row:
                    continue
                if len(row) != width:
                    raise MalformedDataError(
                        path, f"line {reader.line_num}: {len(row)} fields, expected {width} as in the header")
                yield dict(zip(header, row))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise MalformedDataError(path, f"unreadable CSV ({exc}); expected {what}") from exc
