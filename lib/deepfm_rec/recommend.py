"""Top-K movie recommendations of a trained model: a checkpoint's ranker
(deepfm_rec.topk.ModelRanker scores every candidate movie of a user), the lists as a table
of titles (the catalogue: deepfm_rec.data.catalogue).

Shapes: U users, K list length.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from loguru import logger

from deepfm_rec.data.catalogue import read_items, user_code, user_ids
from deepfm_rec.data.encoding import Encoded, open_encoded
from deepfm_rec.inference import load_model
from deepfm_rec.models import attach_bags
from deepfm_rec.topk import ModelRanker

RECOMMENDATION_COLUMNS = ["user", "rank", "item", "title", "genres", "predicted_stars", "score"]


class Recommender(ModelRanker):
    """A ModelRanker of a trained model loaded from its checkpoint (see from_checkpoint);
    arguments as ModelRanker."""

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
        exclude: splits whose rated movies are not recommended (see
            deepfm_rec.topk.exclusion_splits).
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
