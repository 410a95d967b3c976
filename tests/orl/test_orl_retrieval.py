"""Exact kNN and RoI-pair retrieval against brute force."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness_methods.orl.retrieval import knn_search, pair_count, top_pairs


@pytest.mark.parametrize("max_elements", [1 << 26, 37 * 5])  # one block / many small chunks
def test_knn_matches_brute_force(max_elements):
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(203, 16, generator=g), dim=1)
    idx, sim = knn_search(feats, 7, max_elements=max_elements)
    full = (feats @ feats.T).numpy()
    np.fill_diagonal(full, -np.inf)
    expected = np.argsort(-full, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(idx.numpy(), expected)
    np.testing.assert_allclose(sim.numpy(), np.take_along_axis(full, expected, 1), rtol=1e-5, atol=1e-6)
    assert not (idx.numpy() == np.arange(203)[:, None]).any()


def test_knn_with_self_and_bad_k():
    feats = F.normalize(torch.randn(10, 4), dim=1)
    idx, _ = knn_search(feats, 1, exclude_self=False)
    np.testing.assert_array_equal(idx[:, 0].numpy(), np.arange(10))
    with pytest.raises(ValueError):
        knn_search(feats, 10)


def _brute_pairs(q, qn, keys, kn, ratio):
    out = []
    for i in range(len(q)):
        for j in range(keys.shape[1]):
            cands = [(float(q[i, a] @ keys[i, j, b]), a, b) for a in range(qn[i]) for b in range(kn[i, j])]
            cands.sort(key=lambda t: -t[0])
            n = min(pair_count(int(qn[i]), ratio), len(cands))
            out.extend((i * keys.shape[1] + j, a, b, s) for s, a, b in cands[:n])
    return out


def test_top_pairs_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    b, k, p, d = 5, 3, 12, 8
    q = F.normalize(torch.randn(b, p, d, generator=g), dim=-1)
    keys = F.normalize(torch.randn(b, k, p, d, generator=g), dim=-1)
    qn = torch.tensor([12, 1, 7, 10, 3])
    kn = torch.randint(1, p + 1, (b, k), generator=g)
    couple, qi, ki, val = top_pairs(q, qn, keys, kn, 0.3)
    got = list(zip(couple.tolist(), qi.tolist(), ki.tolist(), val.tolist()))
    want = _brute_pairs(q, qn, keys, kn, 0.3)
    assert [t[:3] for t in got] == [t[:3] for t in want]
    np.testing.assert_allclose([t[3] for t in got], [t[3] for t in want], rtol=1e-5, atol=1e-6)
    # every couple keeps at least one pair, padded RoIs are never used
    assert set(couple.tolist()) == set(range(b * k))
    assert (qi < qn[couple // k]).all() and (ki < kn.reshape(-1)[couple]).all()


def test_pair_count():
    assert pair_count(100, 0.1) == 10
    assert pair_count(5, 0.1) == 1
    assert pair_count(30, 0.1) == 3
