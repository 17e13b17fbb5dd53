"""The field registry, and one builder per field family, that `encode` runs.

Every field has an owner: `user` (the same on all of a user's rows), `item` (the same on
all of a movie's rows) or `pair` (the rating's own). A model picks the fields it sees;
ranking models see user and item fields only, since a pair that was never rated has none
of its own.

FIELDS lists every field in meta order: its kind, its owner and the builder of its
family. A builder takes the Rows and returns the arrays of its family and, per field, the
meta.json entries beyond name, kind and owner. Adding a field touches FIELDS, its
builder, and the docs that list the fields (README "The fields", the schema's `fields`
enum; tests/test_encoding.py checks both against FIELDS).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from deepfm_rec.data.layouts import Tables

CATEGORICAL, DENSE, MULTI = "categorical", "dense", "multi"
SECONDS_PER_YEAR = 365.25 * 24 * 3600

# a family's arrays (in file order), and per field its meta beyond name, kind and owner
Built = tuple[dict[str, np.ndarray], dict[str, dict]]


def _codes(values: pd.Series | np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
    """Codes 1..len(vocabulary) for values in the sorted vocabulary, 0 for the rest."""
    values = np.asarray(values)
    pos = np.searchsorted(vocabulary, values)
    pos = np.minimum(pos, max(len(vocabulary) - 1, 0))
    found = (vocabulary[pos] == values) if len(vocabulary) else np.zeros(len(values), bool)
    return np.where(found, pos + 1, 0).astype(np.int32)


def _categorical(values: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, vocabulary) of per-row values, the vocabulary the train rows' values (code 0,
    unknown, for the rest)."""
    vocab = np.unique(values[train])
    return _codes(values, vocab), vocab


def _dense(values: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, dict]:
    """float32 values standardised with their known train values, and the meta of the
    scaling; unknown (NaN) is 0, the train mean."""
    known = ~np.isnan(values)
    mean = float(values[known & train].mean()) if (known & train).any() else 0.0
    std = float(values[known & train].std()) if (known & train).any() else 0.0
    std = std or 1.0
    array = np.where(known, (values - mean) / std, 0.0).astype(np.float32)
    return array, {"mean": mean, "std": std}


def _ragged(bags: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(values, offsets) of a list of code arrays, with the empty bag 0 put first."""
    lengths = np.array([0] + [len(b) for b in bags], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = np.concatenate([np.zeros(0, np.int32)] + [b.astype(np.int32) for b in bags])
    return values, offsets


def _grouped(owner: np.ndarray, value: np.ndarray, n_owners: int, limit: int | None, seed: int):
    """(values, offsets, keys) of one bag per owner code 0..n_owners-1: the sorted distinct
    values (codes ≥ 1) of each owner's pairs, at most `limit` of them (a seeded random
    sample of a larger bag; None: all); owner 0 (unknown) gets the empty bag. `keys`
    (int64, sorted) are the kept pairs as owner * width + value, width = max value + 1."""
    keep = (owner > 0) & (value > 0)
    width = int(value.max(initial=0)) + 1
    keys = np.unique(owner[keep].astype(np.int64) * width + value[keep])  # by owner, value
    if limit is not None:
        # rank each owner's pairs in a seeded random order; keep the first `limit`
        order = np.lexsort((np.random.default_rng(seed).random(len(keys)), keys // width))
        starts = np.searchsorted(keys[order] // width, keys[order] // width, side="left")
        keys = np.sort(keys[order][np.arange(len(keys)) - starts < limit])
    counts = np.bincount(keys // width, minlength=n_owners)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return (keys % width).astype(np.int32), offsets, keys


def release_years(titles: pd.Series) -> np.ndarray:
    """float64 year in a title's closing parentheses ("Heat (1995)", a series' "(2006-2007)"
    gives its first year); NaN where a title has none."""
    found = titles.astype(str).str.extract(r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$")[0]
    return pd.to_numeric(found).to_numpy(np.float64)


@dataclass
class Rows:
    """What every family builds from: the tables, the split and the keys of the N rating
    rows."""

    tables: Tables
    users: pd.DataFrame  # deepfm_rec.data.users.COLUMNS; empty: no demographics
    train: np.ndarray  # bool (N,) the train rows
    implicit: str  # the pairs of the implicit-feedback bags: train or observed
    bag_limit: int | None  # the most values an implicit-feedback bag keeps (None: all)
    seed: int
    user_raw: np.ndarray = field(init=False)  # (N,) raw MovieLens user ids
    item_raw: np.ndarray = field(init=False)  # (N,) raw MovieLens movie ids
    user: np.ndarray = field(init=False)  # int32 (N,) codes of the train rows' users, else 0
    user_vocab: np.ndarray = field(init=False)  # (users-1,) the raw id of codes 1..
    item: np.ndarray = field(init=False)  # int32 (N,) codes of the train rows' movies, else 0
    item_vocab: np.ndarray = field(init=False)  # (items-1,) the raw id of codes 1..
    movies: pd.DataFrame = field(init=False)  # the movies table, one row per id, by id
    movie: np.ndarray = field(init=False)  # int32 (N,) 1 + the row's position in movies, or 0

    def __post_init__(self):
        ratings = self.tables.ratings
        self.user_raw, self.item_raw = ratings["user"].to_numpy(), ratings["item"].to_numpy()
        self.user, self.user_vocab = _categorical(self.user_raw, self.train)
        self.item, self.item_vocab = _categorical(self.item_raw, self.train)
        self.movies = self.tables.movies.sort_values("item").drop_duplicates("item")
        self.movie = _codes(self.item_raw, self.movies["item"].to_numpy())


def _ids(rows: Rows) -> Built:
    """user and item codes, and the raw MovieLens id of each code (code 0 maps to -1)."""
    arrays = {"user": rows.user, "item": rows.item}
    arrays["user_ids"] = np.concatenate([[-1], rows.user_vocab]).astype(np.int64)
    arrays["item_ids"] = np.concatenate([[-1], rows.item_vocab]).astype(np.int64)
    sizes = {"user": len(rows.user_vocab) + 1, "item": len(rows.item_vocab) + 1}
    return arrays, {name: {"vocab_size": size} for name, size in sizes.items()}


def _demographics(rows: Rows) -> Built:
    """gender and occupation codes and the standardised age, from the users table (none
    where it is empty)."""
    if not len(rows.users):
        return {}, {}
    users = rows.users.sort_values("user")
    row_of_user = _codes(rows.user_raw, users["user"].to_numpy().astype(np.int64))
    arrays, fields = {}, {}
    for name in ("gender", "occupation"):
        vocab = np.unique(users[name].astype(str))
        per_user = np.concatenate([[0], _codes(users[name].astype(str), vocab)])
        arrays[name] = per_user[row_of_user].astype(np.int32)
        fields[name] = {"vocab_size": len(vocab) + 1, "vocabulary": vocab.tolist()}
    age = np.concatenate([[np.nan], users["age"].to_numpy(np.float64)])[row_of_user]
    arrays["age"], fields["age"] = _dense(age, rows.train)
    return arrays, fields


def _genres(rows: Rows) -> Built:
    """genres: one bag per movie of the movies table."""
    genres = rows.movies["genres"]
    vocab = np.unique([g for gs in genres for g in gs]).astype(str)
    values, offsets = _ragged([_codes(np.asarray(gs, dtype=str), vocab) for gs in genres])
    arrays = {"genres.values": values, "genres.offsets": offsets, "genres.bag": rows.movie}
    return arrays, {"genres": {"vocab_size": len(vocab) + 1, "vocabulary": vocab.tolist()}}


def _tags(rows: Rows) -> Built:
    """tags: one bag per rated (user, movie) pair; vocabulary from train rows' tags."""
    tags = rows.tables.tags
    tags = tags.assign(tag=tags["tag"].astype(str).str.strip().str.lower())
    tags = tags[tags["tag"] != ""]
    # joined on both ids (a key packed as user * 2^32 + movie collides once an id does not
    # fit in 32 bits); a tag of a pair nobody rated is dropped
    n = len(rows.train)
    keys = pd.DataFrame({"user": rows.user_raw, "item": rows.item_raw, "row": np.arange(n)})
    tags = tags.merge(keys, on=["user", "item"])
    tag_row = tags["row"].to_numpy()
    vocab = np.unique(tags.loc[rows.train[tag_row], "tag"].to_numpy(str)).astype(str)
    tags = tags.assign(code=_codes(tags["tag"].to_numpy(str), vocab))
    tags = tags[tags["code"] > 0].drop_duplicates(["row", "code"]).sort_values(["row", "code"])
    tag_rows, starts = np.unique(tags["row"].to_numpy(), return_index=True)
    codes = tags["code"].to_numpy(np.int32)
    lengths = np.diff(np.append(starts, len(codes)))
    bag = np.zeros(n, dtype=np.int32)
    bag[tag_rows] = np.arange(1, len(tag_rows) + 1, dtype=np.int32)
    arrays = {
        "tags.values": codes,
        "tags.offsets": np.concatenate([[0, 0], np.cumsum(lengths)]).astype(np.int64),
        "tags.bag": bag,
    }
    return arrays, {"tags": {"vocab_size": len(vocab) + 1}}


def _implicit_bags(rows: Rows) -> Built:
    """Implicit feedback (SVD++'s N(u), Koren 2008, and its flip): history, one bag per
    user code of the movies they rated; raters, one per item code of the users who rated
    it."""
    in_bags = rows.train if rows.implicit == "train" else np.ones(len(rows.train), bool)
    arrays, fields = {}, {}
    for name, own, value, size, other_size in [
        ("history", rows.user, rows.item, len(rows.user_vocab) + 1, len(rows.item_vocab) + 1),
        ("raters", rows.item, rows.user, len(rows.item_vocab) + 1, len(rows.user_vocab) + 1),
    ]:
        arrays[f"{name}.values"], arrays[f"{name}.offsets"], kept = _grouped(
            np.where(in_bags, own, 0), value, size, rows.bag_limit, rows.seed
        )
        arrays[f"{name}.bag"] = own
        # a train row is predicted as a held-out row is: without its own pair in its bags,
        # where the bag kept it (under `observed` every row's pair is in them, held-out
        # rows' too: nothing is left out)
        own_pair = np.zeros(len(own), bool)
        if rows.implicit == "train" and len(kept):
            key = own.astype(np.int64) * (int(value.max(initial=0)) + 1) + value
            found = kept[np.minimum(np.searchsorted(kept, key), len(kept) - 1)] == key
            own_pair = rows.train & (own > 0) & (value > 0) & found
        arrays[f"{name}.leave"] = np.where(own_pair, value, 0).astype(np.int32)
        fields[name] = {"vocab_size": other_size, "leave": True}
    return arrays, fields


def _time(rows: Rows) -> Built:
    """The movie's release year (from its title), the rating's year, and the movie's age
    when rated (years)."""
    timestamp = rows.tables.ratings["timestamp"]
    release = np.concatenate([[np.nan], release_years(rows.movies["title"])])[rows.movie]
    known = ~np.isnan(release)  # a title without a year: unknown
    years = np.where(known, release, 0).astype(np.int64)
    release_year, vocab = _categorical(years, rows.train & known)
    seconds = timestamp.to_numpy(np.int64).astype("datetime64[s]")
    calendar_year = seconds.astype("datetime64[Y]").astype(np.int64) + 1970
    rating_year, rating_vocab = _categorical(calendar_year, rows.train)
    rated = 1970 + timestamp.to_numpy(np.float64) / SECONDS_PER_YEAR
    movie_age, scaling = _dense(rated - (release + 0.5), rows.train)
    arrays = {"release_year": release_year, "rating_year": rating_year, "movie_age": movie_age}
    fields = {
        "release_year": {"vocab_size": len(vocab) + 1},
        "rating_year": {"vocab_size": len(rating_vocab) + 1},
        "movie_age": scaling,
    }
    return arrays, fields


@dataclass(frozen=True)
class Field:
    """A registered field: its kind, its owner and the builder of its family."""

    kind: str  # CATEGORICAL, DENSE or MULTI
    owner: str  # user, item or pair
    builder: Callable[[Rows], Built]


FIELDS: dict[str, Field] = {
    "user": Field(CATEGORICAL, "user", _ids),
    "item": Field(CATEGORICAL, "item", _ids),
    "gender": Field(CATEGORICAL, "user", _demographics),
    "occupation": Field(CATEGORICAL, "user", _demographics),
    "age": Field(DENSE, "user", _demographics),
    "genres": Field(MULTI, "item", _genres),
    "tags": Field(MULTI, "pair", _tags),
    "history": Field(MULTI, "user", _implicit_bags),
    "raters": Field(MULTI, "item", _implicit_bags),
    "release_year": Field(CATEGORICAL, "item", _time),
    "rating_year": Field(CATEGORICAL, "pair", _time),
    "movie_age": Field(DENSE, "pair", _time),
}


def build(rows: Rows) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Every family's arrays (families in registry order) and the fields' meta (in
    registry order). A builder builds all of its registered fields, or none (no users
    table, no demographics); anything else is a bug in this module."""
    arrays, built = {}, {}
    for builder in dict.fromkeys(spec.builder for spec in FIELDS.values()):
        family_arrays, family_fields = builder(rows)
        registered = [name for name, spec in FIELDS.items() if spec.builder is builder]
        if set(family_fields) not in (set(registered), set()):
            raise RuntimeError(
                f"{builder.__name__} built fields {list(family_fields)}, the registry gives "
                f"it {registered} (a bug in fields.py)"
            )
        arrays |= family_arrays
        built |= family_fields
    fields = [
        {"name": name, "kind": spec.kind, "owner": spec.owner, **built[name]}
        for name, spec in FIELDS.items()
        if name in built
    ]
    return arrays, fields
