"""The Python entry point: evaluate a pretrained checkpoint on a suite, get its records.

    import harness

    records = harness.evaluate("moco_v2_800ep.pth.tar", suite="all", preset="paper",
                               data_root="/datasets", out="runs/moco")
    records[["task", "status", "metrics"]]

The checkpoint is imported as ``harness run --method imported`` does (any layout that
``harness convert`` reads); each task runs in its own process and writes its record, and a
second call with the same arguments skips what is done.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import pandas as pd


def evaluate(checkpoint: str | Path, suite: str = "all", preset: str = "tiny", data_root: str | Path | None = None,
             seed: int = 0, out: str | Path = "runs", overrides: Sequence[str] = (),
             report: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Run ``suite`` at ``preset`` on ``checkpoint`` and return this run's task records
    (one row per task; ``status`` says ok or failed, ``metrics`` holds the numbers).

    ``data_root``: the datasets (default: the synthetic benchmark); ``overrides``: ``KEY=VALUE``
    strings as ``--set`` takes them, e.g. ``"method.pretrain_data=imagenet"``; ``report``:
    where progress lines go (default: printed). Bad input raises :class:`HarnessError`
    (:class:`DataError` for data and checkpoints), before anything runs.
    """
    from harness.core import config
    from harness.results import store
    from harness.run import preflight, runner

    path = Path(checkpoint).expanduser().resolve()
    cfg = config.resolve("imported", suite, preset=preset, seed=seed,
                         overrides=[f"method.checkpoint={path}", *overrides],
                         data_root=None if data_root is None else str(data_root))
    units = runner.plan(cfg)
    out = Path(out).resolve()
    runner.check_writable(out)
    log = report or runner.print_line
    root = runner.prepare_data(cfg, log)
    preflight.raise_for(preflight.check_plan(cfg, units, root, out=out))
    run = runner.Runner(cfg, out, report=log)
    keys = {o.unit.key for o in run.run(units, root)}
    records = store.load_records(run.records_dir)
    return records[records["unit_key"].isin(keys)].reset_index(drop=True)
