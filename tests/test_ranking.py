"""Ranking metrics and the popularity baseline on hand-computed cases and on real ratings."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from data_helpers import rows_encoded
from deepfm_rec.data.encoding import SPLITS, Encoded
from deepfm_rec.data.errors import DataError
from deepfm_rec.evaluate import evaluate_model
from deepfm_rec.item_rankers import PopularityRanker
from deepfm_rec.metrics import Relevant, hit_matrix, metrics_at, ranking_metrics, relevant_items
from deepfm_rec.topk import rank_and_score
from deepfm_rec.train import train
from settings_helpers import shipped

LOG3 = 1 / np.log2(3)  # the discount of rank 2


def test_metrics_on_three_users_by_hand():
    # A: relevant {10, 20}, list [10, 30, 20]       hits 1 0 1
    # B: relevant {40} and one movie without a code, list [30, 40, 50]    hits 0 1 0
    # C: relevant {60} and one without a code, only two candidates [10, 20, pad]: no hit
    relevant = Relevant(
        users=np.array([1, 2, 3]),
        indptr=np.array([0, 2, 3, 4]),
        items=np.array([10, 20, 40, 60]),
        counts=np.array([2, 2, 2]),
    )
    top = np.array([[10, 30, 20], [30, 40, 50], [10, 20, 0]])
    hits = hit_matrix(top, relevant)
    assert hits.tolist() == [[True, False, True], [False, True, False], [False, False, False]]
    table = ranking_metrics(top, relevant, ks=[1, 3]).set_index("k")
    assert table.loc[1, "users"] == 3
    # @1: A hits at rank 1; NDCG@1 of A = 1 / IDCG 1
    assert table.loc[1, "hr"] == pytest.approx(1 / 3)
    assert table.loc[1, "precision"] == pytest.approx(1 / 3)
    assert table.loc[1, "recall"] == pytest.approx((1 / 2) / 3)
    assert table.loc[1, "ndcg"] == pytest.approx(1 / 3)
    # @3: precision (2/3 + 1/3 + 0) / 3, recall (2/2 + 1/2 + 0/2) / 3
    assert table.loc[3, "hr"] == pytest.approx(2 / 3)
    assert table.loc[3, "precision"] == pytest.approx(1 / 3)
    assert table.loc[3, "recall"] == pytest.approx(1 / 2)
    # DCG A = 1 + 1/log2(4) = 1.5, B = 1/log2(3); both IDCG over min(3, 2) = 2 hits: 1 + 1/log2(3)
    ndcg = (1.5 / (1 + LOG3) + LOG3 / (1 + LOG3) + 0) / 3
    assert table.loc[3, "ndcg"] == pytest.approx(ndcg)
    assert ndcg == pytest.approx(0.4355, abs=1e-4)


def test_ideal_dcg_stops_at_the_number_of_relevant_movies():
    # one relevant movie listed first is a perfect list at every K
    table = metrics_at(np.array([[True, False, False, False]]), np.array([1]), [1, 2, 4])
    assert table["ndcg"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert table["precision"].tolist() == pytest.approx([1.0, 0.5, 0.25])
    # three relevant, hits at ranks 2 and 3: DCG 1/log2(3) + 1/2, IDCG@2 = 1 + 1/log2(3)
    table = metrics_at(np.array([[False, True, True]]), np.array([3]), [2, 3])
    assert table["ndcg"].tolist() == pytest.approx(
        [LOG3 / (1 + LOG3), (LOG3 + 0.5) / (1 + LOG3 + 0.5)]
    )
    with pytest.raises(ValueError, match="exceeds"):
        metrics_at(np.zeros((1, 2), bool), np.array([1]), [5])


def hand_encoded() -> Encoded:
    """Users 1-3, movies 1-4 (code 0: unknown), by split.

    train: movie 1 by users 1, 2, 3; movie 2 by 1, 3; movie 3 by 2, 3; movie 4 by 3,
    so popularity is 1 (3 ratings), 2 and 3 (2, tied: code 2 first), 4 (1).
    valid: user 1 rates movie 4.
    test: user 1 rates movie 3 (5 stars) and an uncoded movie (4 stars); user 2 rates
    movie 2 (3.5: not relevant) and movie 4 (4 stars); an uncoded user rates movie 1.
    """
    rows = [
        (1, 1, 4.0, "train"),
        (2, 1, 3.0, "train"),
        (3, 1, 5.0, "train"),
        (1, 2, 3.0, "train"),
        (3, 2, 2.0, "train"),
        (2, 3, 4.0, "train"),
        (3, 3, 1.0, "train"),
        (3, 4, 4.0, "train"),
        (1, 4, 4.0, "valid"),
        (1, 3, 5.0, "test"),
        (1, 0, 4.0, "test"),
        (2, 2, 3.5, "test"),
        (2, 4, 4.0, "test"),
        (0, 1, 5.0, "test"),
    ]
    return rows_encoded(rows, n_users=3, n_items=4)


def test_relevant_items_by_hand():
    relevant = relevant_items(hand_encoded(), "test", threshold=4.0)
    assert relevant.users.tolist() == [1, 2]  # user 3 has no test rating, user 0 no code
    assert relevant.indptr.tolist() == [0, 1, 2]
    assert relevant.items.tolist() == [3, 4]
    assert relevant.counts.tolist() == [2, 1]  # user 1's uncoded movie still counts
    strict = relevant_items(hand_encoded(), "test", threshold=4.5)
    assert strict.users.tolist() == [1] and strict.counts.tolist() == [1]
    with pytest.raises(
        DataError,
        match=r"^no valid rating \(of a user with train ratings\) "
        r"reaches config key 'ranking.threshold' \(4.5 stars; valid ratings "
        r"span 4.0-4.0 stars\)",
    ):
        relevant_items(hand_encoded(), "valid", threshold=4.5)


def test_popularity_baseline_by_hand():
    encoded = hand_encoded()
    ranker = PopularityRanker(encoded)
    items, counts = ranker.top_k(np.array([1, 2, 3]), 3)
    # user 1 rated 1, 2 in train -> 3, 4; user 2 rated 1, 3 -> 2 (tie with 3 by code), 4
    assert items.tolist() == [[3, 4, 0], [2, 4, 0], [0, 0, 0]]  # user 3 rated everything
    assert counts[:2, :2].tolist() == [[2, 1], [2, 1]] and np.isnan(counts[:, 2]).all()
    items, _ = ranker.top_k(np.array([1]), 2, exclude="train+valid")
    assert items.tolist() == [[3, 0]]
    everything, _ = ranker.top_k(np.array([1]), 4, exclude="none")
    assert everything.tolist() == [[1, 2, 3, 4]]
    # hits: user 1 [3, 4] -> 1 0 (2 relevant), user 2 [2, 4] -> 0 1 (1 relevant)
    table = rank_and_score(ranker, relevant_items(encoded, "test", 4.0), ks=[1, 2]).set_index("k")
    assert table.loc[1, ["hr", "precision", "recall", "ndcg"]].tolist() == pytest.approx(
        [1 / 2, 1 / 2, (1 / 2 + 0) / 2, 1 / 2]
    )
    assert table.loc[2, ["hr", "precision", "recall", "ndcg"]].tolist() == pytest.approx(
        [1.0, 1 / 2, (1 / 2 + 1) / 2, (1 / (1 + LOG3) + LOG3 / 1) / 2]
    )


def test_relevant_items_on_real_ratings(encoded_tiny):
    a = encoded_tiny.arrays
    relevant = relevant_items(encoded_tiny, "test", 4.0)
    test = (a["split"] == SPLITS["test"]) & (a["label"] >= 4.0) & (a["user"] > 0)
    assert relevant.counts.sum() == test.sum()
    assert len(relevant.items) == (test & (a["item"] > 0)).sum()
    for j in (0, len(relevant) // 2, len(relevant) - 1):
        code = relevant.users[j]
        mine = relevant.items[relevant.indptr[j] : relevant.indptr[j + 1]]
        expected = a["item"][test & (a["user"] == code) & (a["item"] > 0)]
        assert mine.tolist() == sorted(expected.tolist())


def test_model_and_popularity_rankings_of_a_trained_model(encoded_tiny, tmp_path):
    checkpoint = tmp_path / "model.pt"
    config, hparams = shipped("fm", "stars", max_epochs=1, batch_size=512, lr=0.01, embed_dim=4)
    train(encoded_tiny, "fm", hparams, config, seed=0, device="cpu", checkpoint=checkpoint)
    settings = {"device": "cpu", "ks": (1, 5, 20), "threshold": 4.0, "exclude": "train+valid"}
    resident = evaluate_model(encoded_tiny, checkpoint, memory_budget=math.inf, **settings)
    # a memory budget too small for the table streams the rows from the memmaps: same numbers
    assert evaluate_model(encoded_tiny, checkpoint, memory_budget=1, **settings) == resident
    tables = {
        "fm": pd.DataFrame(resident["ranking"]),
        "popularity": rank_and_score(
            PopularityRanker(encoded_tiny), relevant_items(encoded_tiny, "test", 4.0), (1, 5, 20)
        ),
    }
    for rows in tables.values():
        assert rows["k"].tolist() == [1, 5, 20]
        assert rows["hr"].is_monotonic_increasing and rows["recall"].is_monotonic_increasing
        assert rows[["hr", "precision", "recall", "ndcg"]].stack().between(0, 1).all()
