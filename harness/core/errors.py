"""Errors the CLI turns into one clear line: exit code 2 for usage and configuration
errors, 3 for dataset and checkpoint files (``harness.cli``)."""
from __future__ import annotations


class HarnessError(Exception):
    """Base class of errors that are the user's input, not a bug."""


class ConfigError(HarnessError):
    """A bad suite/preset/recipe file, an unknown name, or a bad ``--set`` override."""


class DataError(HarnessError):
    """A dataset file that is missing or not in the expected format."""


class CheckpointError(HarnessError):
    """A checkpoint that cannot be read or does not match the expected keys."""
