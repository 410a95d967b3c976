"""The imported recipe's fields (no torch: planning reads them).

- ``checkpoint`` (required): the public checkpoint file, ``--set method.checkpoint=PATH``.
- ``arch``: the backbone's arch; ``null`` infers it from the checkpoint's keys and shapes.
- ``label``, ``pretrain_data``, ``epochs``: name the records only (``label``: the row in
  tables); the stage does not read them (:data:`STAGE_KEYS`), so changing them reruns nothing.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError

STAGE_KEYS = ("checkpoint", "arch")  # the recipe keys the import stage reads


@dataclass(frozen=True)
class ImportedRecipe:
    """The checkpoint file (resolved, existing) and the arch to import it as (``None``: inferred)."""

    checkpoint: Path
    arch: str | None


def parse(cfg: Mapping[str, Any]) -> ImportedRecipe:
    """The fields of recipe ``cfg``; a ConfigError naming what to set when the checkpoint
    is missing or not a file."""
    given = cfg.get("checkpoint")
    if not given:
        raise ConfigError("method 'imported': give the checkpoint file with --set method.checkpoint=PATH")
    path = Path(str(given)).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"method 'imported': checkpoint {path} not found (method.checkpoint)")
    return ImportedRecipe(path, cfg.get("arch"))
