"""OpenImage-MINI for tasks: a built copy under the data root, or one built on demand
(once, under a lock) from ``<data_root>/openimages`` into the harness cache, in full or
as a prefix of ``images`` images per split (a fast dev run's build)."""
from __future__ import annotations

import fcntl
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from harness.core import paths
from harness.core.atomic import atomic_write_text
from harness.data import layout
from harness.data.fileio import MalformedDataError, MissingDataError
from harness.data.openimage_mini import build, spec as spec_mod

PREFIX_SPEC_FILE = "spec.yaml"  # a prefix build's derived spec, in its own folder


def ensure(data_root: Path, spec_file: str | None = None, images: int | None = None) -> Path:
    """The folder of a complete OpenImage-MINI build for ``data_root``.

    ``spec_file``: a path, or None for the default spec. A build found at
    ``<data_root>/openimage_mini`` is used as it is when no spec is named, and when its
    manifest records the named spec's hash; one built from another spec is an error.
    ``images``: build only the first ``images`` images of each split's selection order
    (:func:`~harness.data.openimage_mini.spec.prefix_spec`); a build under the data root
    is still used as it is.
    """
    spec_path = _spec_path(spec_file)
    spec = spec_mod.load_spec(spec_path)
    prebuilt = Path(data_root) / layout.OPENIMAGE_MINI
    if (prebuilt / "manifest.json").is_file():
        built_from = json.loads((prebuilt / "manifest.json").read_text()).get("spec_hash", "")
        digest = spec_mod.spec_hash(spec)
        if spec_file and built_from != digest:
            raise MalformedDataError(prebuilt / "manifest.json", f"built from spec {built_from[:12]}, but this run "
                                     f"asks for {spec_path} (spec {digest[:12]}); rebuild it with that spec")
        return prebuilt
    oi_root = Path(data_root) / layout.OPEN_IMAGES
    if not oi_root.is_dir():
        raise MissingDataError(oi_root, "missing: OpenImage-MINI needs a built copy in "
                               f"{prebuilt} or the Open Images files to build it from")
    if images is not None:
        spec = spec_mod.prefix_spec(spec, images)
    out = _cache_dir(data_root, spec)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if images is not None:
            spec_path = out / PREFIX_SPEC_FILE
            atomic_write_text(spec_path, yaml.safe_dump(spec, sort_keys=False))
        build.build(oi_root, out, spec_path, report=lambda *_: None)
    return out


def built(data_root: Path, spec_file: str | None = None, images: int | None = None) -> bool:
    """Whether :func:`ensure` would find a finished build (and so build nothing)."""
    if (Path(data_root) / layout.OPENIMAGE_MINI / "manifest.json").is_file():
        return True
    spec = spec_mod.load_spec(_spec_path(spec_file))
    if images is not None:
        spec = spec_mod.prefix_spec(spec, images)
    return (_cache_dir(data_root, spec) / "manifest.json").is_file()


def _spec_path(spec_file: str | None) -> Path:
    spec_path = Path(spec_file) if spec_file else spec_mod.default_spec_path()
    if not spec_path.is_absolute() and not spec_path.is_file():
        spec_path = paths.benchmarks_dir().parent / spec_path
    return spec_path


def _cache_dir(data_root: Path, spec: dict[str, Any]) -> Path:
    root_tag = hashlib.sha256(str(Path(data_root).resolve()).encode()).hexdigest()[:8]
    return paths.cache_dir() / "openimage_mini" / f"{spec_mod.spec_hash(spec)[:16]}-{root_tag}"
