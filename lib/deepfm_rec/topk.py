"""The full-ranking top-K engine: the K best candidate movies of users, for any scorer of
users × all movies (a model, a baseline), used by validation, evaluation and
recommendation alike.

The candidates of a user are the movies with a code (seen in train: item codes 1..V-1)
that the user did not rate in the excluded splits (train by default; see
exclusion_splits). `CandidateRanker` masks them and keeps the K best; a scorer defines
`scores`. `ModelRanker` is the scorer of a model: a candidate pair's field rows are its
user side's plus its movie side's (deepfm_rec.data.sides): a pair's own fields (tags, the
rating's time) are zero, since an unrated pair has none. The field vectors are computed
once per movie and once per user, and the model's `grid_scores` scores a chunk of users ×
all movies from them (of at most `pairs_per_batch` pairs): FM's pairwise term becomes a
matrix product, DeepFM's first MLP layer is applied per side.

Shapes: U users, V the item vocabulary (codes 0..V-1, 0 unknown and never a candidate),
C = V - 1 candidate movies (column c is item code c + 1), K list length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from deepfm_rec.data.batches import gather_bags
from deepfm_rec.data.encoding import SPLITS, Encoded
from deepfm_rec.data.sides import Sides
from deepfm_rec.metrics import Relevant, list_metrics


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
        self._train_counts: np.ndarray | None = None

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

    def train_counts(self) -> np.ndarray:
        """`train_counts` of the encoded folder, computed once per ranker (each ranking's
        popularity figure reads it)."""
        if self._train_counts is None:
            self._train_counts = train_counts(self.encoded)
        return self._train_counts

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


class ModelRanker(CandidateRanker):
    """Ranks the candidate movies of users by a model's score, from per-side tables.

    A star model's score is its unclipped predicted rating (clipped, every movie predicted
    above the scale would tie; deepfm_rec.recommend.recommendation_table clips it to
    stars); a ranking model's is its logit, in no unit.

    Args:
        model: a trained FM or DeepFM (deepfm_rec.inference.load_model), for `encoded`.
        encoded: the encoded folder the model was trained on.
        device: where to score; default the model's device.
        pairs_per_batch: the most pairs per forward (see CandidateRanker).
        sides: the users' and movies' field tables for the model's fields, if already
            built (training scores the valid split each epoch with one).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        encoded: Encoded,
        device: torch.device | str | None = None,
        pairs_per_batch: int | None = None,
        sides: Sides | None = None,
    ) -> None:
        device = device if device is not None else next(model.parameters()).device
        super().__init__(encoded, device, pairs_per_batch, model.grid_floats_per_pair)
        self.model = model.to(self.device)
        self.sides = sides if sides is not None else Sides(encoded, model.fields, self.device)
        self.refresh()

    @torch.inference_mode()
    def refresh(self) -> None:
        """Compute every movie's field rows again, after the model's weights changed."""
        was_training = self.model.training
        self.model.eval()
        movies = torch.arange(1, self.n_items, device=self.device)  # (C,) codes
        self.movie_vectors = self.sides.vectors(self.model.embedding, "item", movies)
        self.model.train(was_training)

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        """float32 (U, C) scores of users × every movie (see the class)."""
        was_training = self.model.training
        self.model.eval()
        users_rows = self.sides.vectors(self.model.embedding, "user", users)
        scores = self.model.grid_scores(users_rows, self.movie_vectors)
        self.model.train(was_training)
        return scores


def rank_and_score(
    ranker: CandidateRanker,
    relevant: Relevant,
    ks: Sequence[int],
    exclude: str = "train",
) -> pd.DataFrame:
    """Metrics, coverage and popularity at each K of one ranker's top-max(ks) lists for the
    relevant users."""
    items, _ = ranker.top_k(relevant.users, max(ks), exclude)
    return list_metrics(items, relevant, ks, ranker.train_counts())
