"""Run one generation job in its own process: ``python -m harness.data.synthetic.job NAME ROOT SEED SIZE BIAS``.

Prints the job's counts as one JSON line. Used by :func:`.build.generate` to spread the
independent jobs over CPUs without forking the caller.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .build import run_job


def main(argv: list[str]) -> None:
    name, root, seed, size, bias = argv
    print(json.dumps(run_job(name, Path(root), int(seed), size, float(bias)), sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1:])
