"""The process-group timeout every distributed unit uses (torch-free).

Ranks wait at a barrier for the slowest rank's share of uneven work (CAM chunks over
ranks, the last batches of a feature extraction, rank 0 writing an export or merging
chunks), which at paper scale takes longer than torch's 10-minute NCCL default.
"""
from __future__ import annotations

import datetime
import os

from harness.core.errors import ConfigError

TIMEOUT_ENV = "HARNESS_DIST_TIMEOUT_MIN"
DEFAULT_TIMEOUT_MIN = 180


def timeout() -> datetime.timedelta:
    """``$HARNESS_DIST_TIMEOUT_MIN`` minutes (default 180)."""
    raw = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_MIN))
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if minutes <= 0:
        raise ConfigError(f"${TIMEOUT_ENV}={raw!r}: expected a positive number of minutes")
    return datetime.timedelta(minutes=minutes)
