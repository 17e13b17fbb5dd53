"""Encode canonical tables into memory-mapped arrays, and open them again.

Layout of an encoded folder (N rating rows):
    <field>.npy          int32 (N,) codes of a categorical field; 0 means unknown.
                         int32 halves the memory of int64 and holds any MovieLens id count.
    <field>.npy          float32 (N,) a dense field, standardised with train statistics.
    <field>.values.npy   int32 codes of a multi-valued field, all bags end to end.
    <field>.offsets.npy  int64 (bags+1,) bag b is values[offsets[b]:offsets[b+1]];
                         int64 because values can outgrow int32 on the largest datasets.
    <field>.bag.npy      int32 (N,) the bag of each row; bag 0 is the empty bag.
    <field>.leave.npy    int32 (N,) for the implicit-feedback bags: the value of the row's
                         bag that is the row's own pair (its movie in its user's history,
                         its user among its movie's raters), left out of the row's bag by
                         the models; 0 where the bag does not hold the row's own pair.
    user_ids.npy         int64 (users,) the raw MovieLens id of each user code (-1 for 0);
    item_ids.npy         int64 (items,) likewise for item codes.
    label.npy            float32 (N,) the rating in stars.
    split.npy            uint8 (N,) 0 train, 1 valid, 2 test.
    items.tsv            code, item id, title, genres of every movie with a code.
    meta.json            fields, sizes, split sizes, train mean, provenance, seed, and
                         the dtype and shape of every array above.

Every field has an owner: `user` (the same on all of a user's rows: user, gender,
occupation, age, history), `item` (the same on all of a movie's rows: item, genres,
raters, release_year) or `pair` (the rating's own: tags, rating_year, movie_age). A model
picks the fields it sees; ranking models see user and item fields only, since a pair that
was never rated has none of its own.

Invariants are checked once, here, when written; readers trust them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from loguru import logger

from deepfm_rec.data.errors import DataError
from deepfm_rec.data.layouts import Tables, read_canonical
from deepfm_rec.data.sources import read_provenance
from deepfm_rec.data.staging import staged
from deepfm_rec.data.users import read_users

FORMAT_VERSION = 2
SPLITS = {"train": 0, "valid": 1, "test": 2}
CATEGORICAL, DENSE, MULTI = "categorical", "dense", "multi"
SPLIT_METHODS = ("random", "temporal")
# which pairs the implicit-feedback bags hold: the train split's, or every rated pair's
# (the Netflix-prize convention: which movies a user rated is known, not the stars)
IMPLICIT = ("train", "observed")
SECONDS_PER_YEAR = 365.25 * 24 * 3600


@dataclass
class Encoded:
    """An opened encoded folder: read-only memmaps and the parsed meta.json."""

    folder: Path
    meta: dict
    arrays: dict[str, np.ndarray]

    def fields(self, kind: str) -> list[dict]:
        """The fields of one kind, in meta order."""
        return [f for f in self.meta["fields"] if f["kind"] == kind]

    def rows(self, split: str) -> np.ndarray:
        """Row indices (int64) of a split."""
        return np.flatnonzero(self.arrays["split"] == SPLITS[split])

    def size(self, field: str) -> int:
        """The vocabulary size of a categorical or multi-valued field (codes 0..size-1)."""
        return next(f["vocab_size"] for f in self.meta["fields"] if f["name"] == field)


def open_encoded(folder: Path) -> Encoded:
    """Open an encoded folder with every array memory-mapped read-only.

    Each array meta.json records must be there with the dtype and shape encode wrote; a
    missing, truncated or replaced one is a DataError naming it (the folder is damaged),
    as is a folder of another format version.
    """
    folder = Path(folder)
    again = "encode it again (snakemake --forcerun encode)"
    try:
        meta = json.loads((folder / "meta.json").read_text())
        version, recorded = meta["format_version"], meta["arrays"]
    except (OSError, ValueError, KeyError) as error:
        raise DataError(f"{folder / 'meta.json'}: no list of arrays ({error}); {again}") from None
    if version != FORMAT_VERSION:
        raise DataError(
            f"{folder / 'meta.json'}: format version {version}, this deepfm-rec reads "
            f"{FORMAT_VERSION}; {again}"
        )
    arrays = {}
    for name, wrote in recorded.items():
        path = folder / f"{name}.npy"
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as error:
            problem = f"not a whole .npy array ({error})" if path.exists() else "missing"
            raise DataError(f"{path}: {problem}; {again}") from None
        if [str(array.dtype), list(array.shape)] != [wrote["dtype"], wrote["shape"]]:
            raise DataError(
                f"{path}: {array.dtype} {array.shape}, but encode wrote {wrote['dtype']} "
                f"{tuple(wrote['shape'])}; {again}"
            )
        arrays[name] = array
    return Encoded(folder=folder, meta=meta, arrays=arrays)


def model_fields(meta: dict, names: list[str] | None = None) -> list[dict]:
    """The fields a model sees, in the order of its field vectors (see FieldEmbedding):
    categorical, then multi-valued, then dense, each kind in meta order. `names` None is
    every field; an unknown name is a DataError listing the known ones."""
    known = {f["name"]: f for f in meta["fields"]}
    names = list(known) if names is None else list(names)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise DataError(f"fields {unknown} are not in the encoded data; known: {', '.join(known)}")
    chosen = [known[name] for name in known if name in names]
    return [f for kind in (CATEGORICAL, MULTI, DENSE) for f in chosen if f["kind"] == kind]


def _codes(values: pd.Series | np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
    """Codes 1..len(vocabulary) for values in the sorted vocabulary, 0 for the rest."""
    values = np.asarray(values)
    pos = np.searchsorted(vocabulary, values)
    pos = np.minimum(pos, max(len(vocabulary) - 1, 0))
    found = (vocabulary[pos] == values) if len(vocabulary) else np.zeros(len(values), bool)
    return np.where(found, pos + 1, 0).astype(np.int32)


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


def split_rows(n: int, valid: float, test: float, seed: int) -> np.ndarray:
    """uint8 split code per row: a seeded random permutation cut into test, valid, train."""
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_valid = round(n * test), round(n * valid)
    split = np.zeros(n, dtype=np.uint8)
    split[order[:n_test]] = SPLITS["test"]
    split[order[n_test : n_test + n_valid]] = SPLITS["valid"]
    return split


def split_temporal(user: np.ndarray, timestamp: np.ndarray, valid: float, test: float):
    """uint8 split code per row: each user's latest ratings are test (round(n·test) of a
    user's n), the ones before them valid (round(n·valid)), the rest train. Ties in time
    go by row order. Per user, as RecBole's temporal ordering grouped by user: no user is
    trained on their own future (other users' later ratings stay in train)."""
    order = np.lexsort((np.arange(len(user)), timestamp, user))  # by user, then time
    starts = np.flatnonzero(np.r_[True, user[order][1:] != user[order][:-1]])
    counts = np.diff(np.r_[starts, len(user)])
    from_end = np.repeat(starts + counts, counts) - np.arange(len(user))  # 1 = latest
    n_test = np.repeat(np.round(counts * test), counts)
    n_valid = np.repeat(np.round(counts * valid), counts)
    split = np.zeros(len(user), dtype=np.uint8)
    split[order[from_end <= n_test]] = SPLITS["test"]
    split[order[(from_end > n_test) & (from_end <= n_test + n_valid)]] = SPLITS["valid"]
    return split


def release_years(titles: pd.Series) -> np.ndarray:
    """float64 year in a title's closing parentheses ("Heat (1995)", a series' "(2006-2007)"
    gives its first year); NaN where a title has none."""
    found = titles.astype(str).str.extract(r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$")[0]
    return pd.to_numeric(found).to_numpy(np.float64)


def _invariant(holds, what: str) -> None:
    """A format invariant, checked with a real error (asserts vanish under python -O)."""
    if not holds:
        raise RuntimeError(f"encoded format invariant broken: {what} (a bug in encoding.py)")


def _check(arrays: dict[str, np.ndarray], fields: list[dict], n: int) -> None:
    """The format's invariants; a failure here is a bug in this module."""
    for f in fields:
        name = f["name"]
        if f["kind"] == CATEGORICAL:
            codes = arrays[name]
            _invariant(codes.shape == (n,) and codes.dtype == np.int32, f"{name} shape")
            _invariant(
                codes.min(initial=0) >= 0 and codes.max(initial=0) < f["vocab_size"],
                f"{name} codes in 0..{f['vocab_size'] - 1}",
            )
        elif f["kind"] == DENSE:
            values = arrays[name]
            _invariant(values.shape == (n,) and np.isfinite(values).all(), f"{name} finite")
        else:
            values, offsets = arrays[f"{name}.values"], arrays[f"{name}.offsets"]
            bag = arrays[f"{name}.bag"]
            _invariant(offsets[0] == 0 and offsets[1] == 0, f"{name}: bag 0 is empty")
            _invariant(offsets[-1] == len(values), f"{name}: offsets[-1] == len(values)")
            _invariant((np.diff(offsets) >= 0).all(), f"{name}: offsets do not decrease")
            _invariant(bag.shape == (n,) and bag.min(initial=0) >= 0, f"{name}.bag shape")
            _invariant(bag.max(initial=0) < len(offsets) - 1, f"{name}.bag in range")
            _invariant(
                values.min(initial=1) >= 1 and values.max(initial=0) < f["vocab_size"],
                f"{name} values in 1..{f['vocab_size'] - 1}",
            )
            if f.get("leave"):
                leave = arrays[f"{name}.leave"]
                _invariant(leave.shape == (n,) and leave.min(initial=0) >= 0, f"{name}.leave")
    _invariant(arrays["label"].shape == (n,) and arrays["split"].shape == (n,), "label, split")


def _categorical(name: str, owner: str, values: np.ndarray, train: np.ndarray) -> tuple:
    """A categorical field of per-row values, its vocabulary the train rows' values (code 0,
    unknown, for the rest)."""
    vocab = np.unique(values[train])
    field = {"name": name, "kind": CATEGORICAL, "owner": owner, "vocab_size": len(vocab) + 1}
    return _codes(values, vocab), field, vocab


def _dense(name: str, owner: str, values: np.ndarray, train: np.ndarray) -> tuple:
    """A dense field standardised with its known train values; unknown (NaN) is 0, the
    train mean."""
    known = ~np.isnan(values)
    mean = float(values[known & train].mean()) if (known & train).any() else 0.0
    std = float(values[known & train].std()) if (known & train).any() else 0.0
    std = std or 1.0
    array = np.where(known, (values - mean) / std, 0.0).astype(np.float32)
    return array, {"name": name, "kind": DENSE, "owner": owner, "mean": mean, "std": std}


def encode(
    tables: Tables,
    users: pd.DataFrame,
    out: Path,
    *,
    seed: int,
    valid_fraction: float,
    test_fraction: float,
    provenance: dict,
    split_method: str = "random",
    implicit: str = "train",
    bag_limit: int | None = None,
) -> dict:
    """Encode the tables into the folder `out` (written whole or not at all).

    Args:
        tables: canonical ratings, movies and tags.
        users: the users table (deepfm_rec.data.users.COLUMNS); empty drops the
            demographic fields.
        out: the encoded folder to write.
        seed: seeds the random train/valid/test split.
        valid_fraction, test_fraction: shares of rating rows held out.
        provenance: dataset name and checksum, recorded in meta.json.
        split_method: random (a seeded permutation) or temporal (each user's latest
            ratings are test, the ones before valid; see split_temporal).
        implicit: the pairs of the implicit-feedback bags (history, raters): train
            (default; nothing of valid or test leaks into any bag) or observed (every
            rated pair, stars unseen).
        bag_limit: the most values an implicit-feedback bag keeps (a seeded random
            sample of a larger one; None: all). Training reads each bag's pooled sum from
            a table (BagSums), so a cap only shrinks the bags' memory.

    Returns:
        The meta dict written to meta.json.
    """
    ratings = tables.ratings
    n = len(ratings)
    user_raw = ratings["user"].to_numpy()
    item_raw = ratings["item"].to_numpy()
    if split_method == "random":
        split = split_rows(n, valid_fraction, test_fraction, seed)
    elif split_method == "temporal":
        split = split_temporal(
            user_raw, ratings["timestamp"].to_numpy(), valid_fraction, test_fraction
        )
    else:
        raise DataError(
            f"config key 'split.method': {split_method!r} is not one of {', '.join(SPLIT_METHODS)}"
        )
    if implicit not in IMPLICIT:
        raise DataError(f"config key 'implicit': {implicit!r} is not one of {', '.join(IMPLICIT)}")
    for name, code in SPLITS.items():
        if not (split == code).any():
            raise DataError(
                f"{n} ratings: config key 'split' (valid {valid_fraction}, test "
                f"{test_fraction}) leaves the {name} split empty"
            )
    train = split == SPLITS["train"]
    arrays: dict[str, np.ndarray] = {"split": split}
    fields: list[dict] = []

    arrays["user"], field, user_vocab = _categorical("user", "user", user_raw, train)
    fields.append(field)
    arrays["item"], field, item_vocab = _categorical("item", "item", item_raw, train)
    fields.append(field)
    # code -> raw MovieLens id (code 0, unknown, maps to -1)
    arrays["user_ids"] = np.concatenate([[-1], user_vocab]).astype(np.int64)
    arrays["item_ids"] = np.concatenate([[-1], item_vocab]).astype(np.int64)

    if len(users):
        users = users.sort_values("user")
        row_of_user = _codes(user_raw, users["user"].to_numpy().astype(np.int64))
        for name in ("gender", "occupation"):
            vocab = np.unique(users[name].astype(str))
            per_user = np.concatenate([[0], _codes(users[name].astype(str), vocab)])
            arrays[name] = per_user[row_of_user].astype(np.int32)
            fields.append(
                {
                    "name": name,
                    "kind": CATEGORICAL,
                    "owner": "user",
                    "vocab_size": len(vocab) + 1,
                    "vocabulary": vocab.tolist(),
                }
            )
        age = np.concatenate([[np.nan], users["age"].to_numpy(np.float64)])[row_of_user]
        arrays["age"], field = _dense("age", "user", age, train)
        fields.append(field)

    # genres: one bag per movie of the movies table, in item-id order.
    movies = tables.movies.sort_values("item").drop_duplicates("item")
    genre_vocab = np.unique([g for gs in movies["genres"] for g in gs]).astype(str)
    genre_bags = [_codes(np.asarray(gs, dtype=str), genre_vocab) for gs in movies["genres"]]
    values, offsets = _ragged(genre_bags)
    arrays["genres.values"], arrays["genres.offsets"] = values, offsets
    movie_ids = movies["item"].to_numpy()
    movie_of_row = _codes(item_raw, movie_ids)  # row -> 1 + movie position, 0 not in movies
    arrays["genres.bag"] = movie_of_row
    fields.append(
        {
            "name": "genres",
            "kind": MULTI,
            "owner": "item",
            "vocab_size": len(genre_vocab) + 1,
            "vocabulary": genre_vocab.tolist(),
        }
    )

    # tags: one bag per rated (user, movie) pair; vocabulary from train rows' tags.
    tags = tables.tags.assign(tag=tables.tags["tag"].astype(str).str.strip().str.lower())
    tags = tags[tags["tag"] != ""]
    # joined on both ids (a key packed as user * 2^32 + movie collides once an id does not
    # fit in 32 bits); a tag of a pair nobody rated is dropped
    rows = pd.DataFrame({"user": user_raw, "item": item_raw, "row": np.arange(n)})
    tags = tags.merge(rows, on=["user", "item"])
    tag_row = tags["row"].to_numpy()
    tag_vocab = np.unique(tags.loc[train[tag_row], "tag"].to_numpy(str)).astype(str)
    tags = tags.assign(code=_codes(tags["tag"].to_numpy(str), tag_vocab))
    tags = tags[tags["code"] > 0].drop_duplicates(["row", "code"]).sort_values(["row", "code"])
    tag_rows, starts = np.unique(tags["row"].to_numpy(), return_index=True)
    codes = tags["code"].to_numpy(np.int32)
    lengths = np.diff(np.append(starts, len(codes)))
    arrays["tags.values"] = codes
    arrays["tags.offsets"] = np.concatenate([[0, 0], np.cumsum(lengths)]).astype(np.int64)
    bag = np.zeros(n, dtype=np.int32)
    bag[tag_rows] = np.arange(1, len(tag_rows) + 1, dtype=np.int32)
    arrays["tags.bag"] = bag
    fields.append(
        {"name": "tags", "kind": MULTI, "owner": "pair", "vocab_size": len(tag_vocab) + 1}
    )

    # implicit feedback (SVD++'s N(u), Koren 2008, and its flip): one bag per user code of
    # the movies they rated, one per item code of the users who rated it
    in_bags = train if implicit == "train" else np.ones(n, bool)
    for name, owner, other, size, other_size in [
        ("history", "user", "item", len(user_vocab) + 1, len(item_vocab) + 1),
        ("raters", "item", "user", len(item_vocab) + 1, len(user_vocab) + 1),
    ]:
        own, value = arrays[owner], arrays[other]
        arrays[f"{name}.values"], arrays[f"{name}.offsets"], kept = _grouped(
            np.where(in_bags, own, 0), value, size, bag_limit, seed
        )
        arrays[f"{name}.bag"] = own
        # a train row is predicted as a held-out row is: without its own pair in its bags,
        # where the bag kept it (under `observed` every row's pair is in them, held-out
        # rows' too: nothing is left out)
        own_pair = np.zeros(n, bool)
        if implicit == "train" and len(kept):
            key = own.astype(np.int64) * (int(value.max(initial=0)) + 1) + value
            found = kept[np.minimum(np.searchsorted(kept, key), len(kept) - 1)] == key
            own_pair = train & (own > 0) & (value > 0) & found
        arrays[f"{name}.leave"] = np.where(own_pair, value, 0).astype(np.int32)
        fields.append(
            {"name": name, "kind": MULTI, "owner": owner, "vocab_size": other_size, "leave": True}
        )

    # time: the movie's release year (from its title), the rating's year, and the movie's
    # age when rated (years)
    year_of_movie = np.concatenate([[np.nan], release_years(movies["title"])])
    release = year_of_movie[movie_of_row]
    rated = 1970 + ratings["timestamp"].to_numpy(np.float64) / SECONDS_PER_YEAR
    known = ~np.isnan(release)  # a title without a year: unknown
    years = np.where(known, release, 0).astype(np.int64)
    arrays["release_year"], field, _ = _categorical("release_year", "item", years, train & known)
    fields.append(field)
    timestamp = ratings["timestamp"].to_numpy(np.int64).astype("datetime64[s]")
    calendar_year = timestamp.astype("datetime64[Y]").astype(np.int64) + 1970
    arrays["rating_year"], field, _ = _categorical("rating_year", "pair", calendar_year, train)
    fields.append(field)
    arrays["movie_age"], field = _dense("movie_age", "pair", rated - (release + 0.5), train)
    fields.append(field)

    arrays["label"] = ratings["rating"].to_numpy(np.float32)
    _check(arrays, fields, n)

    label = arrays["label"]
    meta = {
        "format_version": FORMAT_VERSION,
        "rows": n,
        "fields": fields,
        "splits": {name: int((split == code).sum()) for name, code in SPLITS.items()},
        "split_method": split_method,
        "implicit": implicit,
        "bag_limit": bag_limit,
        "train_mean": float(label[train].mean(dtype=np.float64)),
        "rating_min": float(label.min()),
        "rating_max": float(label.max()),
        "users_origin": sorted(set(users["origin"])) if len(users) else [],
        "seed": seed,
        **provenance,
    }

    with staged(out) as staging:
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array)
        # what open_encoded checks each array against
        meta["arrays"] = {
            n: {"dtype": str(a.dtype), "shape": list(a.shape)} for n, a in arrays.items()
        }
        pd.DataFrame(
            {
                "code": np.arange(1, len(item_vocab) + 1),
                "item": item_vocab,
            }
        ).merge(movies[["item", "title", "genres"]], how="left", on="item").assign(
            genres=lambda d: d["genres"].map(lambda g: "|".join(g) if isinstance(g, list) else "")
        ).to_csv(staging / "items.tsv", sep="\t", index=False)
        (staging / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    logger.info("encoded {} rows ({}) into {}", n, meta["splits"], out)
    return meta


def encode_dataset(
    raw: str | Path,
    users: str | Path,
    out: str | Path,
    *,
    seed: int,
    valid_fraction: float,
    test_fraction: float,
    split_method: str = "random",
    implicit: str = "train",
    bag_limit: int | None = None,
) -> dict:
    """Encode the dataset fetched into `raw` (its canonical tables), joined with the users
    table, into `out`."""
    tables = read_canonical(Path(raw))
    return encode(
        tables,
        read_users(users),
        Path(out),
        seed=seed,
        valid_fraction=valid_fraction,
        test_fraction=test_fraction,
        provenance=read_provenance(Path(raw)),
        split_method=split_method,
        implicit=implicit,
        bag_limit=bag_limit,
    )
