"""Top-K movie recommendations: score every candidate movie of a user with a trained model.

The candidates of a user are the movies with a code (seen in train: item codes 1..V-1)
that the user did not rate in the excluded splits (train by default). A candidate pair's
field rows are its user side's plus its movie side's (deepfm_rec.data.sides): a pair's
own fields (tags, the rating's time) are zero, since an unrated pair has none. The field
vectors are computed once per movie and once per user, and the model's `grid_scores`
scores a chunk of users × all movies from them (of at most `pairs_per_batch` pairs):
FM's pairwise term becomes a matrix product, DeepFM's first MLP layer is applied per side.

Shapes: U users, V the item vocabulary (codes 0..V-1, 0 unknown and never a candidate),
C = V - 1 candidate movies (column c is item code c + 1), K list length, B = U_chunk · C
pairs, Fc categorical, Fd dense fields.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from loguru import logger

from deepfm_rec.data.encoding import Encoded, open_encoded
from deepfm_rec.data.sides import Sides
from deepfm_rec.inference import load_model
from deepfm_rec.models import attach_bags
from deepfm_rec.ranking import CandidateRanker

RECOMMENDATION_COLUMNS = ["user", "rank", "item", "title", "genres", "predicted_stars", "score"]


class Recommender(CandidateRanker):
    """Ranks the candidate movies of users by a trained model's score.

    A star model's score is its unclipped predicted rating (clipped, every movie predicted
    above the scale would tie; recommendation_table clips it to stars); a ranking
    model's is its logit, in no unit.

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

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Path,
        encoded: str | Path | Encoded,
        device: str,
        pairs_per_batch: int | None = None,
    ) -> Recommender:
        """Load a checkpoint written by deepfm_rec.train.train for the encoded folder it was
        trained on; a checkpoint of other data (fields, vocabularies) is an error."""
        if not isinstance(encoded, Encoded):
            encoded = open_encoded(Path(encoded))
        model, state = load_model(Path(checkpoint), device)
        trained_on = state["meta"]
        for key in ("fields", "dataset", "checksum", "seed", "rows"):
            if trained_on.get(key) != encoded.meta.get(key):
                values = (
                    ""
                    if key == "fields"  # a long list: the key says enough
                    else f" ({trained_on.get(key)!r} in the checkpoint, "
                    f"{encoded.meta.get(key)!r} in the folder)"
                )
                raise ValueError(
                    f"{checkpoint} was trained on other encoded data than {encoded.folder}: "
                    f"meta.json key {key!r} differs{values}"
                )
        return cls(attach_bags(model, encoded), encoded, pairs_per_batch=pairs_per_batch)

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        """float32 (U, C) scores of users × every movie (see the class)."""
        was_training = self.model.training
        self.model.eval()
        users_rows = self.sides.vectors(self.model.embedding, "user", users)
        scores = self.model.grid_scores(users_rows, self.movie_vectors)
        self.model.train(was_training)
        return scores


def read_items(folder: str | Path) -> pd.DataFrame:
    """items.tsv of an encoded folder, indexed by item code: item (MovieLens id), title,
    genres ("|"-joined)."""
    table = pd.read_csv(Path(folder) / "items.tsv", sep="\t", na_filter=False, dtype=str)
    return table.astype({"code": np.int64, "item": np.int64}).set_index("code")


def user_ids(encoded: Encoded) -> np.ndarray:
    """int64 (users,) the MovieLens id of each user code (-1 for code 0)."""
    return np.asarray(encoded.arrays["user_ids"])


def user_code(encoded: Encoded, user_id: int) -> int:
    """The code of a MovieLens user id; 0 when the user has no train ratings."""
    ids = user_ids(encoded)
    pos = int(np.searchsorted(ids[1:], user_id))  # ids[1:] is sorted (np.unique)
    return pos + 1 if pos < len(ids) - 1 and ids[1 + pos] == user_id else 0


def known_favourites(encoded: Encoded, code: int, n: int) -> tuple[pd.DataFrame, int]:
    """The user's n highest-rated train movies (stars, title, genres) and their train count."""
    a = encoded.arrays
    rows = encoded.rows("train")
    rows = rows[np.asarray(a["user"])[rows] == code]
    stars = np.asarray(a["label"])[rows]
    items = np.asarray(a["item"])[rows]
    order = np.lexsort((items, -stars))[:n]  # best first, ties by item code
    movies = read_items(encoded.folder).reindex(items[order])
    table = pd.DataFrame(
        {
            "stars": stars[order].astype(np.float64),
            "title": movies["title"].to_numpy(),
            "genres": movies["genres"].to_numpy(),
        }
    )
    return table, len(rows)


def recommendation_table(
    encoded: Encoded,
    user_codes: np.ndarray,
    items: np.ndarray,
    scores: np.ndarray,
    stars: bool = True,
) -> pd.DataFrame:
    """The top-K lists as a table (RECOMMENDATION_COLUMNS), one row per user and rank:
    score orders the list; for a star model (`stars`) it is the unclipped prediction (for
    a generous rater, often above the scale) and predicted_stars is it clipped to the
    rating scale; a ranking model's score is no rating, and predicted_stars is empty.

    Args:
        user_codes: int (U,) the users' codes.
        items, scores: (U, K) item codes and scores from Recommender.top_k.
        stars: whether the scores are a star model's predictions.
    """
    movies = read_items(encoded.folder)
    u, k = items.shape
    kept = items.reshape(-1) > 0  # item 0 pads a list shorter than K
    codes = items.reshape(-1)[kept]
    score = scores.reshape(-1)[kept]
    return pd.DataFrame(
        {
            "user": np.repeat(user_ids(encoded)[np.asarray(user_codes)], k)[kept],
            "rank": np.tile(np.arange(1, k + 1), u)[kept],
            "item": movies["item"].reindex(codes).to_numpy(),
            "title": movies["title"].reindex(codes).to_numpy(),
            "genres": movies["genres"].reindex(codes).to_numpy(),
            "predicted_stars": np.clip(
                score, encoded.meta["rating_min"], encoded.meta["rating_max"]
            )
            if stars
            else np.nan,
            "score": score,
        },
        columns=RECOMMENDATION_COLUMNS,
    )


def write_recommendations(
    checkpoint: str | Path,
    encoded: str | Path,
    out: str | Path,
    *,
    k: int,
    device: str,
    exclude: str,
    threads: int | None = None,
    users: Sequence[int] | None = None,
    pairs_per_batch: int | None = None,
) -> pd.DataFrame:
    """Write the top-K lists of many users as TSV (RECOMMENDATION_COLUMNS), and return them.

    Args:
        checkpoint: a model.pt written by deepfm_rec.train.train.
        encoded: the encoded folder it was trained on.
        out: the TSV to write.
        k: list length.
        device: auto (CUDA if present), cpu, cuda, ...
        threads: CPU threads for torch (None leaves torch's default).
        users: MovieLens user ids; default every user with train ratings.
        exclude: splits whose rated movies are not recommended (see exclusion_splits).
        pairs_per_batch: the most pairs per forward.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    enc = open_encoded(Path(encoded))
    recommender = Recommender.from_checkpoint(checkpoint, enc, device, pairs_per_batch)
    if users is None:
        codes = np.arange(1, recommender.n_users)
    else:
        codes = np.array([user_code(enc, int(u)) for u in users], dtype=np.int64)
        missing = [u for u, c in zip(users, codes, strict=True) if c == 0]
        if missing:
            raise ValueError(f"users without train ratings in {enc.folder}: {missing[:10]}")
    start = time.perf_counter()
    items, scores = recommender.top_k(codes, k, exclude)
    seconds = time.perf_counter() - start
    logger.info(
        "top-{} of {} users × {} movies on {} in {:.1f}s ({:.3g} pairs/s)",
        k,
        len(codes),
        recommender.n_candidates,
        recommender.device,
        seconds,
        len(codes) * recommender.n_candidates / max(seconds, 1e-9),
    )
    stars = recommender.model.objective == "stars"
    table = recommendation_table(enc, codes, items, scores, stars)
    table.to_csv(out, sep="\t", index=False, float_format="%.4f")
    return table
