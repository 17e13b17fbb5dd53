"""The encoded format on the real ml-latest-small: invariants and round trips to the tables."""

from __future__ import annotations

import numpy as np
import pytest

from deepfm_rec.data.encoding import SPLITS, encode, split_rows
from deepfm_rec.data.errors import DataError
from deepfm_rec.data.layouts import Tables
from deepfm_rec.data.users import build_users


def bag(encoded, field: str, b: int) -> np.ndarray:
    offsets = encoded.arrays[f"{field}.offsets"]
    return np.asarray(encoded.arrays[f"{field}.values"][offsets[b] : offsets[b + 1]])


def test_arrays_are_readonly_memmaps_with_documented_dtypes(encoded_small):
    a = encoded_small.arrays
    assert isinstance(a["user"], np.memmap) and not a["user"].flags.writeable
    for name in ("user", "item", "gender", "occupation", "genres.bag", "tags.bag"):
        assert a[name].dtype == np.int32, name
    assert a["genres.offsets"].dtype == np.int64 and a["tags.offsets"].dtype == np.int64
    assert a["age"].dtype == a["label"].dtype == np.float32
    assert a["split"].dtype == np.uint8


def test_meta_describes_the_data(encoded_small, tables_small):
    meta = encoded_small.meta
    assert meta["rows"] == len(tables_small.ratings) == 100836
    assert sum(meta["splits"].values()) == meta["rows"]
    assert meta["splits"]["test"] == meta["splits"]["valid"] == round(0.1 * meta["rows"])
    train = encoded_small.rows("train")
    assert meta["train_mean"] == pytest.approx(encoded_small.arrays["label"][train].mean())
    assert (meta["rating_min"], meta["rating_max"]) == (0.5, 5.0)
    assert [f["name"] for f in meta["fields"]] == [
        "user",
        "item",
        "gender",
        "occupation",
        "age",
        "genres",
        "tags",
    ]
    assert meta["users_origin"] == ["synthetic"] and meta["seed"] == 7


def test_labels_and_codes_match_the_ratings(encoded_small, tables_small):
    a, ratings = encoded_small.arrays, tables_small.ratings
    np.testing.assert_array_equal(a["label"], ratings["rating"].to_numpy(np.float32))
    train = a["split"] == SPLITS["train"]
    # a code stands for one raw id: same code <=> same user, among train rows
    user_of_code = {}
    for code, user in zip(a["user"][train], ratings["user"].to_numpy()[train], strict=True):
        assert user_of_code.setdefault(code, user) == user
    assert 0 not in user_of_code
    user_ids = a["user_ids"]
    assert user_ids[0] == -1 and all(user_ids[c] == u for c, u in user_of_code.items())
    item_ids, items = a["item_ids"], ratings["item"].to_numpy()
    assert (item_ids[a["item"][train]] == items[train]).all()
    sizes = {f["name"]: f.get("vocab_size") for f in encoded_small.meta["fields"]}
    assert sizes["user"] == ratings["user"][train].nunique() + 1
    assert sizes["item"] == ratings["item"][train].nunique() + 1
    # items never rated in train are unknown (code 0) elsewhere
    unseen = ~ratings["item"].isin(ratings["item"][train]).to_numpy()
    assert unseen.any() and (a["item"][unseen] == 0).all() and (a["item"][~unseen] > 0).all()


def test_ragged_invariants(encoded_small):
    a, n = encoded_small.arrays, encoded_small.meta["rows"]
    for field in ("genres", "tags"):
        offsets, values = a[f"{field}.offsets"], a[f"{field}.values"]
        assert offsets[0] == 0 and offsets[1] == 0 and offsets[-1] == len(values)
        assert (np.diff(offsets) >= 0).all()
        assert a[f"{field}.bag"].shape == (n,)
        assert a[f"{field}.bag"].max() < len(offsets) - 1


def test_genre_bags_match_movies(encoded_small, tables_small):
    a, ratings = encoded_small.arrays, tables_small.ratings
    vocabulary = next(f for f in encoded_small.meta["fields"] if f["name"] == "genres")[
        "vocabulary"
    ]
    genres = tables_small.movies.set_index("item")["genres"]
    rng = np.random.default_rng(0)
    for row in rng.choice(len(ratings), 300, replace=False):
        expected = sorted(genres[ratings["item"].iloc[row]])
        got = sorted(vocabulary[c - 1] for c in bag(encoded_small, "genres", a["genres.bag"][row]))
        assert got == expected
    no_genres = genres[genres.map(len) == 0].index
    rows = np.flatnonzero(ratings["item"].isin(no_genres).to_numpy())
    assert len(rows) and all(
        len(bag(encoded_small, "genres", a["genres.bag"][r])) == 0 for r in rows
    )


def test_tag_bags_hold_the_pairs_tags(encoded_small, tables_small):
    a, ratings, tags = encoded_small.arrays, tables_small.ratings, tables_small.tags
    tagged = a["tags.bag"] > 0
    pairs = set(zip(tags["user"], tags["item"], strict=True))
    row_pairs = list(zip(ratings["user"], ratings["item"], strict=True))
    assert all(row_pairs[r] in pairs for r in np.flatnonzero(tagged))
    # a train row with tags has exactly its pair's distinct (lower-cased) tags
    train_tagged = np.flatnonzero(tagged & (a["split"] == SPLITS["train"]))
    row = train_tagged[0]
    user, item = row_pairs[row]
    expected = tags[(tags["user"] == user) & (tags["item"] == item)]["tag"].str.strip().str.lower()
    assert len(bag(encoded_small, "tags", a["tags.bag"][row])) == expected.nunique()


def test_age_is_standardised_with_train_statistics(encoded_small):
    age, train = encoded_small.arrays["age"], encoded_small.rows("train")
    assert abs(float(age[train].mean())) < 1e-4 and float(age[train].std()) == pytest.approx(
        1, 1e-3
    )


def test_split_is_seeded():
    a, b, c = (
        split_rows(1000, 0.1, 0.2, seed=1),
        split_rows(1000, 0.1, 0.2, 1),
        split_rows(1000, 0.1, 0.2, 2),
    )
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    assert np.bincount(a).tolist() == [700, 100, 200]


@pytest.mark.parametrize(
    ("n_ratings", "valid", "test", "empty"), [(4, 0.1, 0.1, "valid"), (100, 0.5, 0.5, "train")]
)
def test_a_split_left_empty_is_an_error_naming_the_key(
    tables_small, tmp_path, n_ratings, valid, test, empty
):
    """4 ratings have no 10% valid share; valid + test = 1 leaves no training rows."""
    ratings = tables_small.ratings.iloc[:n_ratings]
    tables = Tables(ratings=ratings, movies=tables_small.movies, tags=tables_small.tags)
    users = build_users(ratings["user"].unique(), None, "synthetic", seed=0)
    with pytest.raises(DataError, match=rf"config key 'split' .* leaves the {empty} split empty"):
        encode(tables, users, tmp_path / "encoded", seed=0, valid_fraction=valid,
               test_fraction=test, provenance={})  # fmt: skip
    assert list(tmp_path.iterdir()) == []
