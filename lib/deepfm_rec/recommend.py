"""Top-K movie recommendations: score every candidate movie of a user with a trained model.

The candidates of a user are the movies with a code (seen in train: item codes 1..V-1)
that the user did not rate in the excluded splits (train by default). A candidate pair's
features are the user's (user code, gender, occupation, age), the movie's (item code,
genre bag) and the empty tag bag, since an unrated pair has no tags. The field vectors
are computed once per movie and once per user, and the model's `grid_scores` scores a
chunk of users × all movies from them (of at most `pairs_per_batch` pairs): FM's
pairwise term becomes a matrix product, DeepFM's first MLP layer is applied per side.

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

from deepfm_rec.data.batches import Batch, gather_bags
from deepfm_rec.data.encoding import CATEGORICAL, DENSE, MULTI, Encoded, open_encoded
from deepfm_rec.inference import load_model
from deepfm_rec.models import field_order
from deepfm_rec.ranking import CandidateRanker

# Whom each field describes. A user's and a movie's fields are the same on all their rows,
# so one row per user code and one per item code give them; a pair's own fields (its tags)
# are unknown, code 0 / the empty bag 0 / dense 0 (the train mean after standardisation).
FIELD_OWNER = {
    "user": "user",
    "gender": "user",
    "occupation": "user",
    "age": "user",
    "item": "item",
    "genres": "item",
    "tags": "pair",
}
RECOMMENDATION_COLUMNS = ["user", "rank", "item", "title", "genres", "predicted_stars", "score"]


class Recommender(CandidateRanker):
    """Ranks the candidate movies of users by a trained model's predicted rating.

    Rankings and `top_k`'s values are the unclipped prediction: clipped, every movie
    predicted above the scale would tie (recommendation_table clips them to stars).

    Args:
        model: a trained FM or DeepFM (deepfm_rec.train.load_model), for `encoded`.
        encoded: the encoded folder the model was trained on.
        device: where to score; default the model's device.
        pairs_per_batch: the most pairs per forward (see CandidateRanker).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        encoded: Encoded,
        device: torch.device | str | None = None,
        pairs_per_batch: int | None = None,
    ) -> None:
        device = device if device is not None else next(model.parameters()).device
        super().__init__(encoded, device, pairs_per_batch, model.grid_floats_per_pair)
        self.model = model.to(self.device).eval()
        fields = encoded.meta["fields"]
        unknown = [f["name"] for f in fields if f["name"] not in FIELD_OWNER]
        if unknown:
            raise ValueError(
                f"{encoded.folder / 'meta.json'}: field(s) {unknown} are neither known user, "
                f"movie nor pair fields ({sorted(FIELD_OWNER)}); add them to FIELD_OWNER"
            )
        a = encoded.arrays
        user, item = np.asarray(a["user"]), np.asarray(a["item"])
        # Any row of a user (of a movie) gives its fields: they are the same on all its rows.
        row_of_user = np.zeros(self.n_users, dtype=np.int64)
        row_of_user[user] = np.arange(len(user))
        row_of_item = np.zeros(self.n_items, dtype=np.int64)
        row_of_item[item] = np.arange(len(item))
        row_of = {"user": row_of_user, "item": row_of_item}

        def per_owner(kind: str, suffix: str, dtype) -> dict[str, torch.Tensor]:
            """For user and item: (codes, fields of `kind`) of each code, 0 elsewhere."""
            names = [f["name"] for f in fields if f["kind"] == kind]
            tables = {}
            for owner, rows in row_of.items():
                table = np.zeros((len(rows), len(names)), dtype=dtype)
                for j, name in enumerate(names):
                    if FIELD_OWNER[name] == owner:
                        table[:, j] = np.asarray(a[name + suffix])[rows]
                table[0] = 0  # code 0 has no row
                tables[owner] = torch.from_numpy(table).to(self.device)
            return tables

        # A pair's field is its user's plus its movie's table: at most one is not 0.
        self.categorical = per_owner(CATEGORICAL, "", np.int32)  # (users|items, Fc)
        self.dense = per_owner(DENSE, "", np.float32)  # (users|items, Fd)
        self.bag = per_owner(MULTI, ".bag", np.int64)  # (users|items, Fm)
        self.ragged = [
            (
                torch.from_numpy(np.array(a[f"{f['name']}.values"])).to(self.device),
                torch.from_numpy(np.array(a[f"{f['name']}.offsets"])).to(self.device),
            )
            for f in fields
            if f["kind"] == MULTI
        ]
        owners = [FIELD_OWNER[name] for name in field_order(encoded.meta)]
        self.user_fields = torch.tensor([o == "user" for o in owners], device=self.device)
        with torch.inference_mode():
            movies = torch.arange(1, self.n_items, device=self.device)  # (C,) codes
            self.movie_vectors = self.side_vectors("item", movies)  # (C, F, 1 + D)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Path,
        encoded: str | Path | Encoded,
        device: str = "auto",
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
                    "" if key == "fields"  # a long list: the key says enough
                    else f" ({trained_on.get(key)!r} in the checkpoint, "
                    f"{encoded.meta.get(key)!r} in the folder)"
                )  # fmt: skip
                raise ValueError(
                    f"{checkpoint} was trained on other encoded data than {encoded.folder}: "
                    f"meta.json key {key!r} differs{values}"
                )
        return cls(model, encoded, pairs_per_batch=pairs_per_batch)

    def side_vectors(self, owner: str, codes: torch.Tensor) -> torch.Tensor:
        """Field rows (N, F, 1 + D) of users (owner "user") or movies ("item") by code,
        zero in the other side's fields; a pair's field rows are its user's plus its
        movie's (pair fields, on the movie side, are code 0 / the empty bag / 0 there)."""
        bag = self.bag[owner][codes]  # (N, Fm)
        batch = Batch(
            categorical=self.categorical[owner][codes],  # (N, Fc)
            dense=self.dense[owner][codes],  # (N, Fd)
            bags=[
                gather_bags(values, offsets, bag[:, j])
                for j, (values, offsets) in enumerate(self.ragged)
            ],
            label=torch.zeros(len(codes), device=self.device),
        )
        keep = self.user_fields if owner == "user" else ~self.user_fields  # (F,)
        return self.model.embedding(batch) * keep[:, None]

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        """Unclipped predicted stars, float32 (U, C), of users × every movie."""
        return self.model.grid_scores(self.side_vectors("user", users), self.movie_vectors)


def read_items(folder: str | Path) -> pd.DataFrame:
    """items.tsv of an encoded folder, indexed by item code: item (MovieLens id), title,
    genres ("|"-joined)."""
    table = pd.read_csv(Path(folder) / "items.tsv", sep="\t", na_filter=False, dtype=str)
    return table.astype({"code": np.int64, "item": np.int64}).set_index("code")


def user_ids(encoded: Encoded) -> np.ndarray:
    """int64 (users,) the MovieLens id of each user code (-1 for code 0)."""
    if "user_ids" not in encoded.arrays:
        raise FileNotFoundError(
            f"{encoded.folder / 'user_ids.npy'} is missing: the folder was encoded by an "
            f"older version; encode it again (it maps user codes to MovieLens ids)"
        )
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
    encoded: Encoded, user_codes: np.ndarray, items: np.ndarray, scores: np.ndarray
) -> pd.DataFrame:
    """The top-K lists as a table (RECOMMENDATION_COLUMNS), one row per user and rank:
    predicted_stars is the score clipped to the rating scale, score the unclipped
    prediction that orders the list (for a generous rater, often above the scale).

    Args:
        user_codes: int (U,) the users' codes.
        items, scores: (U, K) item codes and unclipped predictions from Recommender.top_k.
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
            ),
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
    device: str = "auto",
    threads: int | None = None,
    users: Sequence[int] | None = None,
    exclude: str = "train",
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
    table = recommendation_table(enc, codes, items, scores)
    table.to_csv(out, sep="\t", index=False, float_format="%.4f")
    return table
