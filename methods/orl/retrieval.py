"""Exact nearest-neighbour search and RoI-pair retrieval (the matching steps of stage 2).

Both are exact: similarities are full matrix products (chunked to bound memory) followed
by ``topk``; nothing is approximated or subsampled.
"""
from __future__ import annotations

import torch


def knn_search(feats: torch.Tensor, k: int, *, exclude_self: bool = True,
               max_elements: int = 1 << 26) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` cosine neighbours of every row of ``feats`` (rows L2-normalised by the
    caller) among all rows, computed on ``feats``' device.

    Queries are processed in chunks so that one similarity block holds at most
    ``max_elements`` entries. With ``exclude_self`` a row is never its own neighbour.
    Returns ``(indices int64 (N, k), similarities float32 (N, k))``, most similar first.
    """
    n = feats.shape[0]
    limit = n - 1 if exclude_self else n
    if not 0 < k <= limit:
        raise ValueError(f"k={k} neighbours requested among {limit} candidates")
    feats = feats.float()
    chunk = max(1, min(n, max_elements // max(n, 1)))
    idx_out = torch.empty((n, k), dtype=torch.long, device=feats.device)
    sim_out = torch.empty((n, k), dtype=torch.float32, device=feats.device)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        sims = feats[start:stop] @ feats.T
        if exclude_self:
            rows = torch.arange(stop - start, device=feats.device)
            sims[rows, rows + start] = float("-inf")
        values, indices = sims.topk(k, dim=1)
        idx_out[start:stop] = indices
        sim_out[start:stop] = values
    return idx_out, sim_out


def pair_count(num_query_boxes: int, ratio: float) -> int:
    """How many RoI pairs one (image, neighbour) couple keeps: ``int(ratio * B)``, >= 1."""
    return max(1, int(ratio * num_query_boxes))


def top_pairs(query: torch.Tensor, query_counts: torch.Tensor, keys: torch.Tensor, key_counts: torch.Tensor,
              ratio: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top RoI pairs for a batch of (image, neighbour) couples, padded layout.

    ``query`` ``(b, P, D)`` holds each query image's RoI embeddings (first
    ``query_counts[i]`` rows valid), ``keys`` ``(b, K, P, D)`` those of its ``K``
    neighbours (``key_counts`` ``(b, K)``). For couple ``(i, j)`` the
    ``pair_count(query_counts[i], ratio)`` most similar (query RoI, key RoI) pairs are
    kept. Returns flat tensors over all kept pairs: ``(couple index i*K+j, query RoI,
    key RoI, cosine)``, ordered by couple and, within a couple, by decreasing cosine.
    """
    b, k, p, _ = keys.shape
    sims = torch.einsum("bqd,bkpd->bkqp", query.float(), keys.float())
    ar = torch.arange(p, device=query.device)
    valid = ((ar[None, None, :, None] < query_counts[:, None, None, None])
             & (ar[None, None, None, :] < key_counts[:, :, None, None]))
    sims = sims.masked_fill(~valid, float("-inf")).reshape(b * k, p * p)
    per_query = torch.clamp((query_counts.double() * ratio).floor().long(), min=1)
    keep = torch.minimum(per_query[:, None].expand(b, k).reshape(-1),
                         (query_counts[:, None] * key_counts).reshape(-1).long())
    n_max = int(keep.max().item()) if keep.numel() else 0
    values, flat = sims.topk(n_max, dim=1)
    take = torch.arange(n_max, device=query.device)[None, :] < keep[:, None]
    couple = torch.arange(b * k, device=query.device)[:, None].expand(-1, n_max)[take]
    flat = flat[take]
    return couple, flat // p, flat % p, values[take]
