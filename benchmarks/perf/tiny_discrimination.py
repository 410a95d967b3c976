"""Does the tiny benchmark tell a trained backbone from an untrained one?

For every main metric of the comparison tasks (fine-tuned tiny dense runs are plumbing
and left out) this prints, for MoCo v2 tiny against each untrained floor, measured side
by side on the same records:

    gap = trained mean - floor mean (sign-adjusted: > 0 is better),
    pooled seed std, ratio = gap / pooled std, 95 % CI half-width of each row over seeds,

and PASS when the ratio exceeds 3, the trained mean sits inside 5-95 % (percentages) and
both half-widths are at most 3 points. The floors are ``random:tiny`` (torchvision's
default initialisation) and ``random:tiny-bnstats`` (MoCo v2 tiny's initialisation with
BatchNorm statistics measured on pretraining views, no weight trained: the part of a gap
that is learned). ``--run`` first produces the records with ``harness run --seeds``
(resumable; about 10 min per MoCo v2 seed and 6 min per floor seed on 2 CPU cores)::

    python benchmarks/perf/tiny_discrimination.py --out runs/discrimination --run
    python benchmarks/perf/tiny_discrimination.py --out runs/discrimination   # report only
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

TRAINED = "mocov2:tiny"
FLOORS = ("random:tiny", "random:tiny-bnstats")


def produce(out: Path, seeds: str, suite: str) -> None:
    """Run the trained row and each floor on ``suite`` for ``seeds`` into the run folder ``out``."""
    for row in (TRAINED, *FLOORS):
        method, recipe = row.split(":")
        cmd = [str(Path(sys.executable).with_name("harness")), "run", "--method", method, "--recipe", recipe, "--suite", suite, "--preset", "tiny",
               "--seeds", seeds, "--out", str(out)]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="run folder (its records/ are read; written with --run)")
    ap.add_argument("--run", action="store_true", help="produce the records first")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--suite", default="all")
    args = ap.parse_args()
    if args.run:
        produce(args.out, args.seeds, args.suite)

    from harness.results import store
    from harness.results.compare import RowRef
    from harness.results.separation import format_separation, separation

    records = store.load_records([args.out / "records"])
    trained = RowRef.parse(TRAINED)
    for floor in FLOORS:
        ref = RowRef.parse(floor)
        print(format_separation(separation(records, trained, ref), trained, ref))
        print()


if __name__ == "__main__":
    sys.exit(main())
