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
    return edges


def _successors(edges: np.ndarray) -> np.ndarray:
    """For every edge, the edge that continues its boundary loop.

    Where two loops touch diagonally a vertex has two outgoing edges; taking the right
    turn keeps 4-connected components apart.
    """
    key_base = int(edges[:, [0, 2]].max()) + 2
    start = edges[:, 1] * key_base + edges[:, 0]
    end = edges[:, 3] * key_base + edges[:, 2]
    order = np.argsort(start, kind="stable")
    sorted_start = start[order]
    lo = np.searchsorted(sorted_start, end, "left")
    hi = np.searchsorted(sorted_start, end, "right")
    nxt = order[lo]
    two = np.flatnonzero(hi - lo == 2)
    if two.size:
        d = edges[:, 2:] - edges[:, :2]
        right = np.stack([-d[two, 1], d[two, 0]], 1)
        alt = order[lo[two] + 1]
        use_alt = (d[alt] == right).all(axis=1)
        nxt[two[use_alt]] = alt[use_alt]
    return nxt


def _loops(edges: np.ndarray) -> list[np.ndarray]:
    """Closed loops of start vertices, (n, 2) int arrays."""
    nxt = _successors(edges).tolist()
    seen = bytearray(len(nxt))
    loops = []
    for first in range(len(nxt)):
        if seen[first]:
            continue
        members, k = [], first
        while not seen[k]:
            seen[k] = 1
            members.append(k)
            k = nxt[k]
        loops.append(edges[members, :2])
    return loops


def _corners(loop: np.ndarray) -> np.ndarray:
    """The loop's vertices where the direction changes."""
    d = np.roll(loop, -1, axis=0) - loop
    turn = (d != np.roll(d, 1, axis=0)).any(axis=1)
    return loop[turn]


def _signed_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0].astype(np.float64), pts[:, 1].astype(np.float64)
    return float((x * np.roll(y, -1) - np.roll(x, -1) * y).sum() / 2)


def mask_to_polygons(mask: np.ndarray) -> list[Polygon]:
    """COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` of the mask's outer boundaries."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return []
    y0, x0 = int(rows[0]), int(cols[0])
    edges = _boundary_edges(mask[y0:int(rows[-1]) + 1, x0:int(cols[-1]) + 1])
    polys = []
    for loop in _loops(edges):
        pts = _corners(loop) + np.array([x0, y0])
        if len(pts) >= 3 and _signed_area(pts) > 0:  # negative: a hole's boundary
            polys.append([float(v) for v in pts.reshape(-1)])
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
