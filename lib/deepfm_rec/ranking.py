"""Ranking metrics of top-K lists on a held-out split, and the popularity baseline.

A user is evaluated when they have a code (train ratings) and at least one relevant
movie: one they rated at least `threshold` stars in the evaluated split (test). Their
candidates are the movies with a code they did not rate in the excluded splits: train
and valid in the study (RecBole's convention: a valid rating is known, not a miss; the
config key ranking.exclude), or train only. Relevant movies without an item
code (never rated in train) can be recommended by no model; they still count as relevant:
in the denominator of recall and in the ideal DCG. So every model, and the popularity
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

Shapes: U evaluated users, K list length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from deepfm_rec.data.batches import gather_bags
from deepfm_rec.data.encoding import SPLITS, Encoded
from deepfm_rec.data.errors import DataError

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


def exclusion_splits(exclude: str | Sequence[str]) -> list[str]:
    """The split names whose rated movies are not candidates: "train", "train+valid",
    "none", or a sequence of split names."""
    if isinstance(exclude, str):
        names = [] if exclude == "none" else exclude.split("+")
    else:
        names = list(exclude)
    unknown = [n for n in names if n not in SPLITS]
    if unknown:
        raise ValueError(
            f"exclude: unknown split(s) {unknown}; use names of {list(SPLITS)} joined by "
            f"'+', or 'none'"
        )
    return names


def rated_items(encoded: Encoded, splits: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The movies each user rated in `splits`, as a CSR over user codes.

    Returns:
        (indptr int64 (users+1,), items int64 sorted item codes ≥ 1 per user); user u's
        movies are items[indptr[u]:indptr[u+1]]; rows with code 0 are left out.
    """
    a = encoded.arrays
    sizes = {f["name"]: f.get("vocab_size", 0) for f in encoded.meta["fields"]}
    n_users, n_items = sizes["user"], sizes["item"]
    split_codes = [SPLITS[s] for s in splits]
    rows = np.flatnonzero(np.isin(np.asarray(a["split"]), split_codes))
    user = np.asarray(a["user"])[rows].astype(np.int64)
    item = np.asarray(a["item"])[rows].astype(np.int64)
    known = (user > 0) & (item > 0)
    keys = np.unique(user[known] * n_items + item[known])  # sorted by user, then item
    counts = np.bincount(keys // n_items, minlength=n_users)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, keys % n_items


def train_counts(encoded: Encoded) -> np.ndarray:
    """int64 (C,) the number of users who rated each movie in train (column c: code c + 1)."""
    sizes = {f["name"]: f.get("vocab_size", 0) for f in encoded.meta["fields"]}
    _, items = rated_items(encoded, ["train"])
    return np.bincount(items, minlength=sizes["item"])[1:]


class CandidateRanker:
    """Top-K over the candidate movies of users, for any score of users × all movies.

    Subclasses define `scores` (larger is better); `top_k` masks the excluded movies and
    keeps the K best per user, a chunk of users at a time.

    Args:
        encoded: the encoded folder the users and movies are coded in.
        device: where the chunks are scored.
        pairs_per_batch: the most user-movie pairs in one chunk (bounds memory; a chunk
            holds at least one user, so at least C pairs). Default: 2^23 floats on the CPU
            (32 MB, which measured fastest) and 2^29 on CUDA (2 GB), over
            `floats_per_pair`.
        floats_per_pair: the float32 values `scores` holds per pair at once (1 for a
            score; DeepFM's first hidden layer for its grid).
    """

    def __init__(
        self,
        encoded: Encoded,
        device: torch.device | str,
        pairs_per_batch: int | None = None,
        floats_per_pair: int = 1,
    ) -> None:
        self.encoded = encoded
        self.meta = encoded.meta
        self.device = torch.device(device)
        sizes = {f["name"]: f.get("vocab_size", 0) for f in encoded.meta["fields"]}
        self.n_users, self.n_items = sizes["user"], sizes["item"]
        self.n_candidates = self.n_items - 1  # C: every item code but 0
        if pairs_per_batch is None:
            pairs_per_batch = (
                1 << 29 if self.device.type == "cuda" else 1 << 23
            ) // floats_per_pair
        self.pairs_per_batch = pairs_per_batch
        self._rated: dict[tuple[str, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        """float32 (U, C) scores of users (int64 codes, on the device) × every movie."""
        raise NotImplementedError

    def report(self, items: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """The values `top_k` returns for the chosen (U, K) items and their scores."""
        return scores

    def rated(self, splits: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(indptr, items) of `rated_items`, on the device, cached per set of splits."""
        key = tuple(sorted(splits))
        if key not in self._rated:
            indptr, items = rated_items(self.encoded, key)
            self._rated[key] = (
                torch.from_numpy(indptr).to(self.device),
                torch.from_numpy(items).to(self.device),
            )
        return self._rated[key]

    def users_per_chunk(self) -> int:
        return max(1, self.pairs_per_batch // max(self.n_candidates, 1))

    @torch.inference_mode()
    def top_k(
        self, user_codes: np.ndarray, k: int, exclude: str | Sequence[str] = "train"
    ) -> tuple[np.ndarray, np.ndarray]:
        """The K best candidate movies of each user, best first.

        Args:
            user_codes: int (U,) user codes, 1..users-1.
            k: list length K.
            exclude: splits whose rated movies are not candidates (see exclusion_splits).

        Returns:
            (items int64 (U, K) item codes, values float32 (U, K) from `report`). Where a
            user has fewer than K candidates the list ends with item 0 and value NaN.
        """
        user_codes = np.asarray(user_codes, dtype=np.int64)
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        bad = user_codes[(user_codes < 1) | (user_codes >= self.n_users)]
        if len(bad):
            raise ValueError(f"user codes must be in 1..{self.n_users - 1}; got {bad[:5]}")
        indptr, rated = self.rated(exclusion_splits(exclude))
        k_kept = min(k, self.n_candidates)
        items = np.zeros((len(user_codes), k), dtype=np.int64)
        values = np.full((len(user_codes), k), np.nan, dtype=np.float32)
        step = self.users_per_chunk()
        for start in range(0, len(user_codes), step):
            users = torch.from_numpy(user_codes[start : start + step]).to(self.device)
            scores = self.scores(users)  # (U, C)
            # the rated movies of these users, as (row, column) pairs to mask
            movies, _ = gather_bags(rated, indptr, users)
            lengths = indptr[users + 1] - indptr[users]
            rows = torch.repeat_interleave(
                torch.arange(len(users), device=self.device), lengths, output_size=len(movies)
            )
            scores[rows, movies - 1] = -torch.inf
            top, column = torch.topk(scores, k_kept, dim=1)  # (U, K), sorted
            chosen = torch.where(top == -torch.inf, 0, column + 1)  # masked: no candidate
            shown = self.report(chosen, top).to(torch.float32)
            shown = torch.where(chosen == 0, torch.nan, shown)
            end = start + len(users)
            items[start:end, :k_kept] = chosen.cpu().numpy()  # a CPU-GPU sync per chunk
            values[start:end, :k_kept] = shown.cpu().numpy()
        return items, values


def popularity_order(counts: np.ndarray) -> np.ndarray:
    """int64 (C,) the candidate columns by their number of train ratings `counts` (C,),
    most rated first, ties by code."""
    return np.lexsort((np.arange(len(counts)), -counts))


class PopularityRanker(CandidateRanker):
    """The popularity baseline: candidates by number of train ratings, ties by item code.

    `top_k` reports each listed movie's number of train ratings.
    """

    def __init__(
        self, encoded: Encoded, device: torch.device | str = "cpu", pairs_per_batch=None
    ) -> None:
        super().__init__(encoded, device, pairs_per_batch)
        counts = train_counts(encoded)  # (C,)
        order = popularity_order(counts)
        position = np.empty(self.n_candidates, dtype=np.float32)
        position[order] = np.arange(self.n_candidates)  # exact in float32 below 2^24
        self.score_row = torch.from_numpy(-position).to(self.device)  # distinct: no ties
        self.counts = torch.from_numpy(np.concatenate([[0], counts])).to(self.device)

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        return self.score_row.expand(len(users), -1).clone()  # (U, C)

    def report(self, items: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.counts[items].to(torch.float32)


def rank_and_score(
    ranker: CandidateRanker,
    relevant: Relevant,
    ks: Sequence[int],
    exclude: str = "train",
) -> pd.DataFrame:
    """Metrics, coverage and popularity at each K of one ranker's top-max(ks) lists for the
    relevant users."""
    items, _ = ranker.top_k(relevant.users, max(ks), exclude)
    table = ranking_metrics(items, relevant, ks)
    ratings = np.concatenate([[0], train_counts(ranker.encoded)])  # by item code
    listed = [items[:, :k][items[:, :k] > 0] for k in table["k"]]
    table["coverage"] = [len(np.unique(m)) / ranker.n_candidates for m in listed]
    table["popularity"] = [float(ratings[m].mean()) if len(m) else np.nan for m in listed]
    return table
