"""Weighted k-NN votes on hand-made features with known answers."""
from __future__ import annotations

import math

import pytest
import torch

from harness.tasks.features import Features
from harness.tasks.knn import knn_predict


def _feats(rows: list[list[float]], labels: list[int]) -> Features:
    return Features(torch.tensor(rows), torch.tensor(labels))


def test_cosine_not_euclidean_neighbours() -> None:
    # the query is far from class 1's point in L2 but points the same way
    train = _feats([[10.0, 0.0], [0.0, 0.1]], [1, 0])
    test = _feats([[0.1, 0.01]], [1])
    assert knn_predict(train, test, 2, k=1).tolist() == [1]


def test_only_the_k_nearest_vote() -> None:
    # two class-0 rows nearest the query, four class-1 rows a little further away
    rows = [[math.cos(a), math.sin(a)] for a in (0.05, -0.05, 0.15, -0.15, 0.16, -0.16)]
    train = _feats(rows, [0, 0, 1, 1, 1, 1])
    test = _feats([[1.0, 0.0]], [0])
    assert knn_predict(train, test, 2, k=2).tolist() == [0]
    assert knn_predict(train, test, 2, k=6).tolist() == [1]  # four near-equal votes outweigh two


def test_votes_are_weighted_by_exp_similarity_over_temperature() -> None:
    # one very similar class-1 row against two less similar class-0 rows:
    # exp(s1 / T) > 2 exp(s0 / T) exactly when (s1 - s0) / T > ln 2
    angle0, angle1 = 0.6, 0.2
    train = _feats([[math.cos(angle1), math.sin(angle1)], [math.cos(angle0), math.sin(angle0)],
                    [math.cos(angle0), -math.sin(angle0)]], [1, 0, 0])
    test = _feats([[1.0, 0.0]], [1])
    gap = math.cos(angle1) - math.cos(angle0)
    hot, cold = gap / (0.5 * math.log(2)), gap / (2 * math.log(2))
    assert knn_predict(train, test, 2, k=3, temperature=cold).tolist() == [1]
    assert knn_predict(train, test, 2, k=3, temperature=hot).tolist() == [0]


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="k must be >= 1"):
        knn_predict(_feats([[1.0]], [0]), _feats([[1.0]], [0]), 1, k=0)
