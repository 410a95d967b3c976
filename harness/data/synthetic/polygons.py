"""Mask -> COCO segmentation: outer-boundary polygons along pixel edges, or RLE.

Polygons trace the outer boundary of every 4-connected component along pixel edges
(holes are dropped, as COCO polygons cannot hold them), so rasterising them with
pycocotools reproduces the mask up to its holes and boundary rounding.
"""
from __future__ import annotations

import numpy as np

Polygon = list[float]


def _boundary_edges(mask: np.ndarray) -> np.ndarray:
    """Directed unit edges (x0, y0, x1, y1) with the foreground on one fixed side."""
    m = np.pad(mask.astype(bool), 1)
    core = m[1:-1, 1:-1]
    r, c = np.nonzero(core & ~m[:-2, 1:-1])
    top = np.stack([c, r, c + 1, r], 1)
    r, c = np.nonzero(core & ~m[1:-1, 2:])
    right = np.stack([c + 1, r, c + 1, r + 1], 1)
    r, c = np.nonzero(core & ~m[2:, 1:-1])
    bottom = np.stack([c + 1, r + 1, c, r + 1], 1)
    r, c = np.nonzero(core & ~m[1:-1, :-2])
    left = np.stack([c, r + 1, c, r], 1)
    edges = np.concatenate([top, right, bottom, left]).astype(np.int64)
    order = np.lexsort((edges[:, 3], edges[:, 2], edges[:, 1], edges[:, 0]))
    return edges[order]


def _loops(edges: np.ndarray) -> list[list[tuple[int, int]]]:
    outgoing: dict[tuple[int, int], list[int]] = {}
    for k, (x0, y0, _, _) in enumerate(edges.tolist()):
        outgoing.setdefault((x0, y0), []).append(k)
    used = np.zeros(len(edges), bool)
    loops = []
    for start in range(len(edges)):
        if used[start]:
            continue
        loop, k = [], start
        while not used[k]:
            used[k] = True
            x0, y0, x1, y1 = edges[k].tolist()
            loop.append((x0, y0))
            dx, dy = x1 - x0, y1 - y0
            cands = [e for e in outgoing[(x1, y1)] if not used[e]]
            if not cands:
                break
            if len(cands) > 1:  # diagonal touch: turn right, keeping 4-connected parts apart
                right = (-dy, dx)
                cands = [e for e in cands if (edges[e, 2] - x1, edges[e, 3] - y1) == right] or cands
            k = cands[0]
        loops.append(loop)
    return loops


def _simplify(loop: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Drop vertices that lie on a straight run."""
    n = len(loop)
    out = []
    for i in range(n):
        (ax, ay), (bx, by), (cx, cy) = loop[i - 1], loop[i], loop[(i + 1) % n]
        if (bx - ax) * (cy - by) - (by - ay) * (cx - bx) != 0:
            out.append((bx, by))
    return out


def _signed_area(loop: list[tuple[int, int]]) -> float:
    xs = np.array([p[0] for p in loop], np.float64)
    ys = np.array([p[1] for p in loop], np.float64)
    return float((xs * np.roll(ys, -1) - np.roll(xs, -1) * ys).sum() / 2)


def mask_to_polygons(mask: np.ndarray) -> list[Polygon]:
    """COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` of the mask's outer boundaries."""
    polys = []
    for loop in _loops(_boundary_edges(mask)):
        if _signed_area(loop) <= 0:  # hole boundary (or degenerate)
            continue
        pts = _simplify(loop)
        if len(pts) >= 3:
            polys.append([float(v) for p in pts for v in p])
    return polys


def mask_to_rle(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE (column-major runs starting with background), as COCO crowds."""
    flat = np.asarray(mask, bool).flatten(order="F")
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0] + runs
    return {"counts": [int(r) for r in runs], "size": [int(mask.shape[0]), int(mask.shape[1])]}
