"""The metrics of a study, as pure functions: rating metrics in stars, and ranking
metrics of top-K lists on a held-out split.

Rating metrics: MSE (stars²), RMSE and MAE (stars) of predictions against labels.

Ranking: a user is evaluated when they have a code (train ratings) and at least one
relevant movie: one they rated at least `threshold` stars in the evaluated split (test).
Their candidates are the movies with a code they did not rate in the excluded splits: train
and valid in the study (RecBole's convention: a valid rating is known, not a miss; the
config key ranking.exclude), or train only (deepfm_rec.topk). Relevant movies without an
item code (never rated in train) can be recommended by no model; they still count as
relevant: in the denominator of recall and in the ideal DCG. So every model, and every
baseline, is scored against the same relevant sets, and metrics are not inflated by
dropping the movies that are hard to recommend.

Metrics at K, binary relevance, averaged over the evaluated users:
    HR@K         1 if any of the top K is relevant
    Precision@K  hits in the top K / K
    Recall@K     hits in the top K / number of relevant movies
    NDCG@K       DCG@K / IDCG@K, DCG = sum over hits of 1 / log2(rank + 1) (rank from 1),
                 IDCG = the DCG of min(K, number of relevant movies) hits at the top.
and of the lists themselves, so that a degenerate ranker shows:
    coverage@K   distinct movies in all the users' top K / candidate movies
    popularity@K mean number of train ratings of the movies listed in the top K

Shapes: U evaluated users, K list length, C candidate movies (column c: item code c + 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deepfm_rec.data.encoding import SPLITS, Encoded
from deepfm_rec.data.errors import DataError


def rating_metrics(prediction: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """MSE, RMSE (stars²/stars) and MAE (stars) of predictions against labels."""
    error = np.asarray(prediction, np.float64) - np.asarray(label, np.float64)
    if error.size == 0:
        raise ValueError("no rows to score")
    mse = float(np.mean(error**2))
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.mean(np.abs(error))),
        "rows": int(error.size),
    }


RANKING_COLUMNS = ["model", "k", "users", "hr", "precision", "recall", "ndcg"]


@dataclass
class Relevant:
    """The relevant movies of the evaluated users, as a CSR.

    users: int64 (U,) user codes, ascending.
    indptr: int64 (U+1,) user j's movies with a code are items[indptr[j]:indptr[j+1]].
    items: int64 item codes ≥ 1, sorted within each user.
    counts: int64 (U,) all relevant movies of each user, with or without a code (≥ 1).
    """

    users: np.ndarray
    indptr: np.ndarray
    items: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, positions: np.ndarray) -> Relevant:
        """The relevant sets of the users at `positions` (ascending) only."""
        starts, ends = self.indptr[positions], self.indptr[positions + 1]
        take = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
        indptr = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64)
        items = self.items[take.astype(np.int64)] if len(take) else self.items[:0]
        return Relevant(self.users[positions], indptr, items, self.counts[positions])

    def sample(self, n: int, seed: int) -> Relevant:
        """At most `n` of the users (0: all), a seeded sample, ascending."""
        if not n or len(self) <= n:
            return self
        return self.subset(np.sort(np.random.default_rng(seed).choice(len(self), n, False)))


def relevant_items(encoded: Encoded, split: str, threshold: float) -> Relevant:
    """The movies each user with train ratings rated ≥ `threshold` stars in `split`."""
    a = encoded.arrays
    rows = np.flatnonzero(
        (np.asarray(a["split"]) == SPLITS[split]) & (np.asarray(a["label"]) >= threshold)
    )
    user = np.asarray(a["user"])[rows].astype(np.int64)
    item = np.asarray(a["item"])[rows].astype(np.int64)
    item, user = item[user > 0], user[user > 0]  # a user without a code gets no list
    if len(user) == 0:
        labels = np.asarray(a["label"])[np.asarray(a["split"]) == SPLITS[split]]
        raise DataError(
            f"no {split} rating (of a user with train ratings) reaches config key "
            f"'ranking.threshold' ({threshold} stars; {split} ratings span {labels.min()}-"
            f"{labels.max()} stars): no movie is relevant to rank; lower the threshold"
        )
    users, counts = np.unique(user, return_counts=True)
    n_items = max(int(item.max(initial=0)) + 1, 1)
    keys = np.unique(user[item > 0] * n_items + item[item > 0])  # by user, then item
    per_user = np.searchsorted(users, keys // n_items)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(per_user, minlength=len(users)))])
    return Relevant(users, indptr.astype(np.int64), keys % n_items, counts.astype(np.int64))


def hit_matrix(top_items: np.ndarray, relevant: Relevant) -> np.ndarray:
    """bool (U, K): whether each listed movie is relevant to its user.

    Args:
        top_items: int (U, K) item codes, row j for relevant.users[j]; 0 pads (never a hit).
    """
    top_items = np.asarray(top_items, dtype=np.int64)
    if top_items.shape[0] != len(relevant):
        raise ValueError(f"{top_items.shape[0]} top-K rows for {len(relevant)} evaluated users")
    n_items = int(max(top_items.max(initial=0), relevant.items.max(initial=0))) + 1
    owner = np.repeat(np.arange(len(relevant)), np.diff(relevant.indptr))
    keys = owner * n_items + relevant.items  # sorted: users ascend, items sorted per user
    query = np.arange(len(relevant))[:, None] * n_items + top_items  # (U, K)
    pos = np.minimum(np.searchsorted(keys, query), max(len(keys) - 1, 0))
    return (keys[pos] == query) & (top_items > 0) if len(keys) else np.zeros(query.shape, bool)


def metrics_at(hits: np.ndarray, counts: np.ndarray, ks: Sequence[int]) -> pd.DataFrame:
    """HR, precision, recall and NDCG at each K, averaged over users.

    Args:
        hits: bool (U, K_max) hit matrix of lists sorted best first.
        counts: int (U,) number of relevant movies of each user (≥ 1).
        ks: the list lengths, each ≤ K_max.

    Returns:
        One row per K: k, users, hr, precision, recall, ndcg.
    """
    hits = np.asarray(hits, dtype=bool)
    counts = np.asarray(counts, dtype=np.int64)
    if len(counts) == 0:
        raise ValueError("no users with relevant movies to score")
    if max(ks) > hits.shape[1]:
        raise ValueError(f"k={max(ks)} exceeds the list length {hits.shape[1]}")
    discount = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))  # rank r (from 1): log2(r+1)
    ideal = np.cumsum(discount)  # ideal[n - 1]: IDCG of n hits at the top
    hit_count = np.cumsum(hits, axis=1)  # (U, K_max) hits within the top k
    dcg = np.cumsum(hits * discount, axis=1)  # (U, K_max)
    records = []
    for k in ks:
        h = hit_count[:, k - 1]
        records.append(
            {
                "k": int(k),
                "users": len(counts),
                "hr": float(np.mean(h > 0)),
                "precision": float(np.mean(h / k)),
                "recall": float(np.mean(h / counts)),
                "ndcg": float(np.mean(dcg[:, k - 1] / ideal[np.minimum(k, counts) - 1])),
            }
        )
    return pd.DataFrame(records, columns=RANKING_COLUMNS[1:])


def ranking_metrics(top_items: np.ndarray, relevant: Relevant, ks: Sequence[int]) -> pd.DataFrame:
    """metrics_at for top-max(ks) lists (rows aligned with relevant.users)."""
    return metrics_at(hit_matrix(top_items, relevant), relevant.counts, ks)


def list_metrics(
    top_items: np.ndarray, relevant: Relevant, ks: Sequence[int], counts: np.ndarray
) -> pd.DataFrame:
    """ranking_metrics, coverage and popularity at each K of top-max(ks) lists.

    Args:
        top_items: int (U, max(ks)) item codes, row j for relevant.users[j]; 0 pads.
        counts: int (C,) the number of train ratings of each candidate movie.
    """
    table = ranking_metrics(top_items, relevant, ks)
    ratings = np.concatenate([[0], counts])  # by item code
    listed = [top_items[:, :k][top_items[:, :k] > 0] for k in table["k"]]
    table["coverage"] = [len(np.unique(m)) / len(counts) for m in listed]
    table["popularity"] = [float(ratings[m].mean()) if len(m) else np.nan for m in listed]
    return table
