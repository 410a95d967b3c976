"""OpenImage-MINI annotation pass vs a plain ``pandas.read_csv`` of the same train box CSV.

Generates (once, cached) a synthetic box CSV with the real 21-column train layout
(default 14.6M rows, ~2.2 GB, ~8.6 boxes per image over 600 classes), then runs, each in
its own process so peak memory is measured separately:
  A. the annotation pass (harness.data.openimage_mini.select): one streaming polars pass
     over the 8 needed columns into sort keys, choose the classes, select the images and
     their boxes, write the selection;
  B. ``pandas.read_csv(path)`` alone.
Each clock starts after its library import (polars for A, pandas for B). Prints both wall
times, peak RSS and the speed ratio B/A (goal: B/A >= 2 with A under 1.5 GB), and for
scale the time polars takes just to parse A's 8 columns (the floor of A).

    .venv/bin/python benchmarks/perf/openimage_mini_select.py [--rows 14600000]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HEADER = ("ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,"
          "IsInside,XClick1X,XClick2X,XClick3X,XClick4X,XClick1Y,XClick2Y,XClick3Y,XClick4Y\n")


def generate(path: Path, rows: int, seed: int = 0, chunk: int = 500_000) -> None:
    import pandas as pd

    rng = np.random.default_rng(seed)
    mids = np.array([f"/m/0{k:05x}" for k in range(600)])
    n_images = rows // 8.6
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        fh.write(HEADER)
        done = 0
        while done < rows:
            n = min(chunk, rows - done)
            img = np.sort(rng.integers(0, int(n_images), n).astype(np.uint64) * np.uint64(0x9E3779B1) + np.uint64(7))
            x0, y0 = rng.random(n) * 0.7, rng.random(n) * 0.7
            x1, y1 = x0 + rng.random(n) * 0.3, y0 + rng.random(n) * 0.3
            flags = rng.random((n, 5)) < np.array([0.5, 0.3, 0.05, 0.03, 0.01])
            df = pd.DataFrame({"ImageID": [f"{v:016x}" for v in img], "Source": "xclick",
                               "LabelName": mids[rng.zipf(1.3, n) % 600], "Confidence": 1,
                               "XMin": x0.round(6), "XMax": x1.round(6), "YMin": y0.round(6), "YMax": y1.round(6),
                               **{c: flags[:, i].astype(int) for i, c in enumerate(
                                   ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"))}})
            for c in ("XClick1X", "XClick2X", "XClick3X", "XClick4X", "XClick1Y", "XClick2Y", "XClick3Y", "XClick4Y"):
                df[c] = (x0 if c.endswith("X") else y0).round(6)
            df.to_csv(fh, header=False, index=False)
            done += n
    tmp.rename(path)


PASS = """
import json, sys, time
from pathlib import Path
import polars
from harness.data.openimage_mini import select
t = time.perf_counter()
path = Path(sys.argv[1])
spec = {"seed": 0, "classes": {"mode": "auto", "min_instances": 2000, "max_classes": 50},
        "boxes": {"min_area": 0.01},
        "image_filter": {"min_objects": 3, "min_classes": 2, "exclude_group_of": True, "exclude_depiction": True}}
rows = select.stream_boxes(path, spec)
classes = select.choose_classes(rows, spec, None)
sel = select.select_images(rows, classes, spec, size=30000, cap=1500)
Path(sys.argv[2]).write_text(json.dumps({"classes": classes, "images": sel.image_ids}))
print(json.dumps({"seconds": time.perf_counter() - t, "images": len(sel.image_ids), "classes": len(classes)}))
"""
SCAN = """
import json, sys, time
import polars as pl
t = time.perf_counter()
f32 = pl.Float32
df = pl.scan_csv(sys.argv[1], schema_overrides={
    "ImageID": pl.String, "LabelName": pl.Categorical, "XMin": f32, "XMax": f32, "YMin": f32, "YMax": f32,
    "IsGroupOf": pl.Int8, "IsDepiction": pl.Int8}).select(
    pl.col("ImageID").str.to_integer(base=16, dtype=pl.UInt64), "LabelName", "XMin", "XMax", "YMin", "YMax",
    "IsGroupOf", "IsDepiction").collect(engine="streaming")
print(json.dumps({"seconds": time.perf_counter() - t, "rows": df.height}))
"""
READ = """
import json, sys, time
import pandas as pd
t = time.perf_counter()
df = pd.read_csv(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - t, "rows": len(df)}))
"""


def measure(code: str, *args: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["peak_rss_gb"] = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024 ** 2
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=14_600_000)
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "oim-perf"))
    args = ap.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    csv_path = cache / f"train-bbox-{args.rows}.csv"
    if not csv_path.exists():
        t = time.perf_counter()
        generate(csv_path, args.rows)
        print(f"generated {csv_path} ({csv_path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t:.0f} s")
    # the annotation pass runs first, so that the RUSAGE_CHILDREN peak of B is not A's
    a = measure(PASS, str(csv_path), str(cache / "selection.json"))
    floor = measure(SCAN, str(csv_path))
    b = measure(READ, str(csv_path))
    print(f"rows: {args.rows:,}  file: {csv_path.stat().st_size / 1e9:.2f} GB")
    print(f"A annotation pass (stream + select + write): {a['seconds']:.2f} s, peak RSS {a['peak_rss_gb']:.2f} GB, "
          f"{a['images']} images / {a['classes']} classes selected")
    print(f"  of which parsing alone (polars scan of the 8 needed columns): {floor['seconds']:.2f} s")
    print(f"B pandas.read_csv alone:                     {b['seconds']:.2f} s, peak RSS {b['peak_rss_gb']:.2f} GB")
    print(f"speed ratio B/A = {b['seconds'] / a['seconds']:.2f}x (goal >= 2), "
          f"memory A = {a['peak_rss_gb']:.2f} GB (goal < 1.5 GB)")


if __name__ == "__main__":
    main()
