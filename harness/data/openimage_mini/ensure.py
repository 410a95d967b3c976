"""OpenImage-MINI for tasks: a built copy under the data root, or one built on demand
(once, under a lock) from ``<data_root>/openimages`` into the harness cache."""
from __future__ import annotations

import fcntl
import json
from pathlib import Path

from harness.core import paths
from harness.data import layout
from harness.data.fileio import MalformedDataError, MissingDataError
from harness.data.openimage_mini import build, spec as spec_mod


def ensure(data_root: Path, spec_file: str | None = None) -> Path:
    """The folder of a complete OpenImage-MINI build for ``data_root``.

    ``spec_file``: a path, or None for the default spec. A build found at
    ``<data_root>/openimage_mini`` is used as it is when no spec is named, and when its
    manifest records the named spec's hash; one built from another spec is an error.
    """
    spec_path, digest = _spec(spec_file)
    prebuilt = Path(data_root) / layout.OPENIMAGE_MINI
    if (prebuilt / "manifest.json").is_file():
        built = json.loads((prebuilt / "manifest.json").read_text()).get("spec_hash", "")
        if spec_file and built != digest:
            raise MalformedDataError(prebuilt / "manifest.json", f"built from spec {built[:12]}, but this run asks "
                                     f"for {spec_path} (spec {digest[:12]}); rebuild it with that spec")
        return prebuilt
    oi_root = Path(data_root) / layout.OPEN_IMAGES
    if not oi_root.is_dir():
        raise MissingDataError(oi_root, "missing: OpenImage-MINI needs a built copy in "
                               f"{prebuilt} or the Open Images files to build it from")
    out = paths.cache_dir() / "openimage_mini" / f"{digest[:16]}-{_root_tag(data_root)}"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        build.build(oi_root, out, spec_path, report=lambda *_: None)
    return out


def _spec(spec_file: str | None) -> tuple[Path, str]:
    spec_path = Path(spec_file) if spec_file else spec_mod.default_spec_path()
    if not spec_path.is_absolute() and not spec_path.is_file():
        spec_path = paths.benchmarks_dir().parent / spec_path
    return spec_path, spec_mod.spec_hash(spec_mod.load_spec(spec_path))


def built(data_root: Path, spec_file: str | None = None) -> bool:
    """Whether :func:`ensure` would find a finished build (and so build nothing)."""
    _, digest = _spec(spec_file)
    cached = paths.cache_dir() / "openimage_mini" / f"{digest[:16]}-{_root_tag(data_root)}"
    return (Path(data_root) / layout.OPENIMAGE_MINI / "manifest.json").is_file() or \
        (cached / "manifest.json").is_file()


def _root_tag(data_root: Path) -> str:
    import hashlib

    return hashlib.sha256(str(Path(data_root).resolve()).encode()).hexdigest()[:8]
