"""OpenImage-MINI image and mask pass: images/s with all cores vs one process, in one run.

Writes (once, cached) Open-Images-style files whose scenes have the size of a typical
Open Images photo (default 1024x768; the synthetic generator's scenes, objects and mask
PNGs, drawn at that size), then builds OpenImage-MINI from them with the tiny spec twice
into fresh folders: with one process and with ``--workers`` processes. Each build's image
pass (decode, masks resized to the image and RLE-encoded, semantic PNG, object crops)
is timed from the rate line the build prints; the annotation pass is not part of it.
Prints both rates and the speed-up (goal: close to the number of cores).

    .venv/bin/python benchmarks/perf/openimage_mini_images.py [--images 400] [--workers 2]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from harness.data.openimage_mini.build import build
from harness.data.synthetic.openimages import write_openimages
from harness.data.synthetic.sizes import DEFAULT

SPEC = Path(__file__).resolve().parents[1] / "openimage_mini" / "spec-tiny.yaml"


def generate(root: Path, images: int, width: int, height: int) -> Path:
    """Open-Images-style files with ``images`` train and ``images // 2`` validation scenes."""
    oi_root = root / f"oi-{images}-{width}x{height}"
    done = oi_root / ".complete"
    if not done.is_file():
        shutil.rmtree(oi_root, ignore_errors=True)
        sizes = dataclasses.replace(DEFAULT, scene_w=width, scene_h=height, openimages=(images, images // 2))
        write_openimages(oi_root, seed=0, sz=sizes, bias=0.0)
        done.write_text("ok")
    return oi_root / "openimages"


def image_pass(oi_root: Path, out: Path, workers: int) -> tuple[int, float]:
    """``(images, seconds)`` of the image passes of one fresh build."""
    shutil.rmtree(out, ignore_errors=True)
    lines: list[str] = []
    build(oi_root, out, SPEC, workers=workers, report=lines.append)
    images, seconds = 0, 0.0
    for line in lines:
        m = re.search(r": (\d+) images processed \(([\d.]+) images/s\)", line)
        if m:
            images += int(m.group(1))
            seconds += int(m.group(1)) / float(m.group(2))
    if not images:
        raise SystemExit("the build printed no image-pass rate:\n" + "\n".join(lines))
    return images, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=400, help="train scenes (validation: half as many)")
    ap.add_argument("--size", default="1024x768", help="scene size WxH")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "oim-images-perf"))
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    cache = Path(args.cache)
    t = time.perf_counter()
    oi_root = generate(cache, args.images, width, height)
    print(f"inputs: {oi_root} ({time.perf_counter() - t:.0f} s to generate or find)")
    n1, s1 = image_pass(oi_root, cache / "out-1", workers=1)
    nk, sk = image_pass(oi_root, cache / f"out-{args.workers}", workers=args.workers)
    print(f"image pass, {width}x{height} scenes: 1 process {n1 / s1:.1f} images/s ({n1} images, {s1:.1f} s); "
          f"{args.workers} processes {nk / sk:.1f} images/s ({nk} images, {sk:.1f} s)")
    print(f"speed-up with {args.workers} processes: {s1 / sk * nk / n1:.2f}x (goal: close to {args.workers})")


if __name__ == "__main__":
    main()
