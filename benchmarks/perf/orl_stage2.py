"""ORL stage 2 on this machine: selective-search throughput and RoI-pair retrieval vs brute force.

Part 1: selective search (OpenCV, fast mode) on COCO-sized 640x480 synthetic scenes, on one
core and with a pool over every core here; prints images/s per core and the projected
wall time of selective search for COCO train2017 (118,287 images) on a 16-core node
(per-core rate x 16 x the parallel efficiency measured here). The GPU steps of stage 2
(kNN features, RoI embeddings) are projected from an assumed GPU rate (``--gpu-crops-per-s``),
stated as such.

Part 2: RoI-pair retrieval, side by side on the same proposals and model:
- ours: every image's RoIs embedded once into the chunked store, then batched top-k over
  padded (image, neighbour) similarity blocks (:func:`harness_methods.orl.correspondence.roi_pairs`);
- brute force (the reference's procedure): for every image, embed its RoIs and again the
  RoIs of each of its K neighbours, then one similarity matrix and top-k per neighbour.
It checks that both return the same pairs and prints the time ratio; the matching step
alone (batched vs one couple at a time, same stored embeddings) is timed as well.

Run: ``.venv/bin/python benchmarks/perf/orl_stage2.py`` (about a minute on 2 cores).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness.data.synthetic.plan import render_scene, sample_scene  # noqa: E402
from harness.pretrain.models import build_resnet  # noqa: E402
from harness_methods.orl.boxes import filter_proposals  # noqa: E402
from harness_methods.orl.correspondence import roi_pairs  # noqa: E402
from harness_methods.orl.embed import roi_embeddings  # noqa: E402
from harness_methods.orl.retrieval import pair_count  # noqa: E402
from harness_methods.orl.roi_store import RoIEmbeddingStore  # noqa: E402
from harness.pretrain.selective_search import read_bgr, selective_search  # noqa: E402

COCO_TRAIN = 118_287
NODE_CORES = 16


def write_scenes(folder: Path, n: int, width: int, height: int, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        scene = render_scene(sample_scene(rng, width, height, (2, 5), bias=None), rng)
        path = folder / f"{i:012d}.jpg"
        Image.fromarray(scene.image).save(path, quality=90)
        paths.append(path)
    return paths


def _ss_one(path: str) -> int:
    import cv2

    cv2.setNumThreads(1)
    return len(selective_search(read_bgr(Path(path))))


def bench_selective_search(paths: list[Path], workers: int) -> tuple[float, float, float]:
    """(images/s on one core, images/s with ``workers`` processes, mean proposals)."""
    import cv2

    cv2.setNumThreads(1)
    _ss_one(str(paths[0]))  # warm-up
    t = time.perf_counter()
    counts = [_ss_one(str(p)) for p in paths]
    single = len(paths) / (time.perf_counter() - t)
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_ss_one, [str(paths[0])] * workers)  # start-up outside the timing
        t = time.perf_counter()
        pool.map(_ss_one, [str(p) for p in paths] * 2, chunksize=1)
        pooled = 2 * len(paths) / (time.perf_counter() - t)
    return single, pooled, float(np.mean(counts))


def brute_force_pairs(backbone: torch.nn.Module, paths: list[Path], rois: list[np.ndarray], neighbors: np.ndarray,
                      ratio: float, size: int) -> list[tuple[int, int, int, int]]:
    """The reference procedure: per image, embed own and neighbours' RoIs, top-k per neighbour."""
    out = []
    for i in range(len(paths)):
        nb = [int(j) for j in neighbors[i]]
        feats = roi_embeddings(backbone, [paths[i]] + [paths[j] for j in nb], [rois[i]] + [rois[j] for j in nb],
                               size=size, images_per_batch=len(nb) + 1, device="cpu")
        q = feats[0]
        for r, kf in enumerate(feats[1:]):
            sims = q @ kf.T
            n = min(pair_count(len(q), ratio), sims.numel())
            flat = sims.flatten().topk(n).indices
            out.extend((i, r, int(f // sims.shape[1]), int(f % sims.shape[1])) for f in flat)
    return out


def matching_loop(store: RoIEmbeddingStore, neighbors: np.ndarray, ratio: float) -> int:
    """Matching one (image, neighbour) couple at a time on the stored embeddings."""
    total = 0
    for i in range(len(neighbors)):
        q = torch.from_numpy(store.gather(np.array([i]))[0, :store.counts[i]])
        for j in neighbors[i]:
            k = torch.from_numpy(store.gather(np.array([j]))[0, :store.counts[j]])
            sims = q @ k.T
            total += len(sims.flatten().topk(min(pair_count(len(q), ratio), sims.numel())).indices)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ss-images", type=int, default=6)
    ap.add_argument("--pair-images", type=int, default=40)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--top-n", type=int, default=16)
    ap.add_argument("--roi-size", type=int, default=64)
    ap.add_argument("--gpu-crops-per-s", type=float, default=3000.0,
                    help="assumed ResNet-50 224 px inference rate of one GPU (crops/s), for the projection")
    args = ap.parse_args()
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"== selective search (fast, 640x480 synthetic scenes, {args.ss_images} images, {cores} cores here)")
        paths = write_scenes(tmp / "coco", args.ss_images, 640, 480)
        single, pooled, mean_boxes = bench_selective_search(paths, cores)
        eff = min(1.0, pooled / (single * cores))
        node_rate = single * NODE_CORES * eff
        ss_hours = COCO_TRAIN / node_rate / 3600
        print(f"one core: {single:.2f} images/s ({1 / single:.2f} s/image, {mean_boxes:.0f} raw proposals/image)")
        print(f"pool of {cores}: {pooled:.2f} images/s, parallel efficiency {eff:.2f}")
        print(f"projected selective search, COCO train2017 ({COCO_TRAIN} images) on {NODE_CORES} cores: "
              f"{ss_hours:.2f} h")
        gpu_h = COCO_TRAIN * 100 / args.gpu_crops_per_s / 3600
        print(f"GPU steps (assumed {args.gpu_crops_per_s:.0f} crops/s, 100 RoIs/image, each embedded once): "
              f"{gpu_h:.2f} h on one GPU; projected stage 2 wall time on a 16-core 1-GPU node: "
              f"{ss_hours + gpu_h:.2f} h (the brute-force procedure embeds every RoI K+1 = 11 times: "
              f"{ss_hours + 11 * gpu_h:.2f} h)")

        print(f"\n== RoI-pair retrieval ({args.pair_images} images 128x96, K={args.k}, top_n={args.top_n}, "
              f"RoIs at {args.roi_size} px, ResNet-18, CPU)")
        small = write_scenes(tmp / "small", args.pair_images, 128, 96, seed=1)
        rois = [filter_proposals(selective_search(read_bgr(p)), (128, 96), min_size=16, max_aspect=3, iou_thr=0.5,
                                 top_n=args.top_n) for p in small]
        g = torch.Generator().manual_seed(0)
        neighbors = np.stack([torch.randperm(args.pair_images - 1, generator=g)[:args.k].numpy() for _ in small])
        neighbors = neighbors + (neighbors >= np.arange(args.pair_images)[:, None])  # never the image itself
        torch.manual_seed(0)
        backbone = build_resnet("resnet18").eval()
        flat = np.concatenate(rois)
        offsets = np.concatenate([[0], np.cumsum([len(r) for r in rois])]).astype(np.int64)

        t = time.perf_counter()
        store = RoIEmbeddingStore(tmp / "emb", [len(r) for r in rois], 16, {"bench": 1})
        store.fill(lambda rg: [f.numpy() for f in roi_embeddings(
            backbone, [small[i] for i in rg], [rois[i] for i in rg], size=args.roi_size, images_per_batch=16,
            device="cpu")], "float32")
        t_embed = time.perf_counter() - t
        t = time.perf_counter()
        pair_off, q_box, k_box, _ = roi_pairs(store, flat, offsets, neighbors, 0.1, "cpu")
        t_match = time.perf_counter() - t
        ours = t_embed + t_match

        t = time.perf_counter()
        brute = brute_force_pairs(backbone, small, rois, neighbors, 0.1, args.roi_size)
        t_brute = time.perf_counter() - t

        k = args.k
        ours_set = set()
        for c in range(len(pair_off) - 1):
            i, r = divmod(c, k)
            j = int(neighbors[i, r])
            for row in range(pair_off[c], pair_off[c + 1]):
                qi = int(np.nonzero((rois[i] == q_box[row]).all(1))[0][0])
                ki = int(np.nonzero((rois[j] == k_box[row]).all(1))[0][0])
                ours_set.add((i, r, qi, ki))
        brute_set = set(brute)
        agree = len(ours_set & brute_set) / max(1, len(brute_set | ours_set))
        print(f"ours: embed once {t_embed:.2f} s + batched matching {t_match:.3f} s = {ours:.2f} s")
        print(f"brute force (re-embed neighbours per image, per-couple top-k): {t_brute:.2f} s")
        print(f"speed-up ours vs brute force: {t_brute / ours:.2f}x; same (image, neighbour, query RoI, key RoI) "
              f"pairs: {100 * agree:.1f}% of {len(brute_set | ours_set)} (ties in the scores may order differently)")
        t = time.perf_counter()
        n_loop = matching_loop(store, neighbors, 0.1)
        t_loop = time.perf_counter() - t
        print(f"matching only: batched {t_match:.3f} s vs one couple at a time {t_loop:.3f} s "
              f"({t_loop / t_match:.2f}x), {n_loop} pairs (ours {len(q_box)})")


if __name__ == "__main__":
    main()
