"""Atomic file writes: readers see the old file or the new one, never half of one.

Every writer goes through :func:`atomic_open`: a temporary file in the target's folder,
flushed and (by default) fsynced, then renamed onto the target; on any error the
temporary file is removed and the target is left as it was.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator


@contextlib.contextmanager
def atomic_open(path: Path | str, fsync: bool = True) -> Iterator[IO[bytes]]:
    """A binary file handle whose content replaces ``path`` when the block ends without
    an error. ``fsync=False`` skips the flush to disk (for many small, rebuildable files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_open(path) as fh:
        fh.write(data)


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path | str, obj: Any, **dumps: Any) -> None:
    """``json.dumps(obj, **dumps)`` written atomically."""
    atomic_write_text(path, json.dumps(obj, **dumps))


def atomic_savez(path: Path | str, **arrays: Any) -> None:
    """``np.savez`` of ``arrays`` written atomically."""
    import numpy as np

    with atomic_open(path) as fh:
        np.savez(fh, **arrays)
