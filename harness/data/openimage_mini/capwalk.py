"""The per-class capped walk over ranked images, vectorised."""
from __future__ import annotations

import numpy as np


def capped_walk(indptr: np.ndarray, classes: np.ndarray, n_classes: int, size: int, cap: int,
                window: int = 16384) -> np.ndarray:
    """Positions of the images taken by walking them in order: an image is taken unless one
    of its classes already has ``cap`` taken images (0: no cap); the walk stops at ``size``.
    Image ``i`` has the distinct classes ``classes[indptr[i]:indptr[i + 1]]``.

    Works window by window: images with a class already full are skipped, the others are
    taken up to the first one whose class would fill past ``cap`` (skipped too). Each such
    stop fills a class, so there are at most ``n_classes`` more rounds than windows.
    """
    n = len(indptr) - 1
    if not cap:
        return np.arange(min(size, n))
    counts = np.zeros(n_classes, np.int64)
    taken: list[np.ndarray] = []
    n_taken, pos = 0, 0
    while pos < n and n_taken < size:
        end = min(n, pos + window)
        cls = classes[indptr[pos]:indptr[end]]
        img = np.repeat(np.arange(end - pos), np.diff(indptr[pos:end + 1]))
        blocked = np.zeros(end - pos, bool)
        blocked[img[counts[cls] >= cap]] = True
        live = ~blocked[img]
        cls, img = cls[live], img[live]
        order = np.argsort(cls, kind="stable")
        run_start = np.flatnonzero(np.r_[True, cls[order][1:] != cls[order][:-1]])
        earlier = np.empty(len(cls), np.int64)  # earlier live images of the window with this class
        earlier[order] = np.arange(len(cls)) - np.repeat(run_start, np.diff(np.r_[run_start, len(cls)]))
        over = np.flatnonzero(counts[cls] + earlier >= cap)
        stop = int(img[over[0]]) if len(over) else end - pos
        take = np.flatnonzero(~blocked[:stop])[: size - n_taken]
        if len(take):
            counts += np.bincount(cls[img <= take[-1]], minlength=n_classes)
            taken.append(pos + take)
            n_taken += len(take)
        pos += stop + 1 if len(over) else end - pos
    return np.concatenate(taken) if taken else np.zeros(0, np.int64)
