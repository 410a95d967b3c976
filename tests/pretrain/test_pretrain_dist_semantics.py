"""Contrastive pieces across two gloo ranks: the key queue enqueues every rank's keys in
rank order, MoCo v3's batch contrast labels each query with its own key's position in
the gathered batch, and Shuffle BN encodes each rank's share of the permuted global batch
and hands every rank its own rows back in order."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gloo_ranks import run_ranks
from harness.pretrain.moco import KeyQueue
from harness.pretrain.mocov3 import batch_contrast
from harness.pretrain.shuffle_bn import shuffled_forward
from pretrain_oracles import contrastive_ce, fifo_push

N, T = 3, 0.2


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return tuple(F.normalize(torch.randn(2 * N, 8, generator=g), dim=1) for _ in range(3))


def _shuffle_input() -> torch.Tensor:
    return torch.arange(2.0 * N).view(2 * N, 1) * torch.tensor([[1.0, 10.0]])


def _group_stats(t: torch.Tensor) -> torch.Tensor:
    """Each row followed by its group's mean (the rows show the order, the means the grouping)."""
    return torch.cat([t, t.mean(0, keepdim=True).expand_as(t)], 1)


def _rank(rank: int) -> tuple:
    q, k, keys = _inputs()
    mine = slice(rank * N, (rank + 1) * N)
    loss, acc = batch_contrast(q[mine], k[mine], T)
    torch.manual_seed(0)
    queue = KeyQueue(8, 10)
    start = queue.keys.clone()
    queue.push(keys[mine])
    queue.push(keys[mine].flip(0))
    x = _shuffle_input()[mine]
    shuffled = shuffled_forward(_group_stats, x, 1, torch.Generator().manual_seed(11))
    return loss.item(), acc.item(), start.tolist(), queue.keys.tolist(), int(queue.ptr), shuffled.tolist()


def test_two_ranks_gather_keys_in_rank_order() -> None:
    got = run_ranks(_rank)
    q, k, keys = _inputs()
    for rank in (0, 1):
        loss, acc, start, held, ptr, shuffled = got[rank]
        start, held, shuffled = torch.tensor(start), torch.tensor(held), torch.tensor(shuffled)
        mine = slice(rank * N, (rank + 1) * N)
        logits = q[mine].double() @ k.double().t() / T  # against every rank's keys
        labels = [rank * N + i for i in range(N)]
        assert abs(loss - 2 * T * contrastive_ce(logits, labels)) < 1e-5, rank
        assert abs(acc - 100 * sum(int(row.argmax()) == y for row, y in zip(logits, labels)) / N) < 1e-4
        second = torch.cat([keys[:N].flip(0), keys[N:].flip(0)])
        want, want_ptr = fifo_push(*fifo_push(start, 0, keys), second)
        assert ptr == want_ptr and torch.allclose(held, want, atol=1e-6), rank
        x = _shuffle_input()
        perm = torch.randperm(2 * N, generator=torch.Generator().manual_seed(11))
        group_mean = torch.empty(2 * N, 2)
        for r in range(2):  # rank r encodes the permuted rows r*N .. (r+1)*N - 1
            rows = perm[r * N:(r + 1) * N]
            group_mean[rows] = x[rows].mean(0)
        assert torch.allclose(shuffled, torch.cat([x, group_mean], 1)[mine], atol=1e-6), rank
