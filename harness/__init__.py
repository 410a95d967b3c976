"""Evaluation harness for object-aware self-supervised pretraining.

``harness.evaluate(checkpoint, suite=..., preset=..., data_root=...)`` runs a suite on a
pretrained checkpoint and returns its records (see :mod:`harness.python_api`).
"""
from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:  # imported on first use: `import harness` stays light
    if name == "evaluate":
        from harness.python_api import evaluate

        return evaluate
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
