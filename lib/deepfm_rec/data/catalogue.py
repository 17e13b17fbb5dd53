"""Who and what an encoded folder's codes are: the movies (items.tsv), the users'
MovieLens ids, and a user's known favourites. Without torch: the report reads them too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepfm_rec.data.encoding import Encoded


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
