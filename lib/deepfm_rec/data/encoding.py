"""Encode canonical tables into memory-mapped arrays, and open them again.

Layout of an encoded folder (N rating rows):
    <field>.npy          int32 (N,) codes of a single-valued field; 0 means unknown.
                         int32 halves the memory of int64 and holds any MovieLens id count.
    <field>.npy          float32 (N,) a dense field, standardised with train statistics.
    <field>.values.npy   int32 codes of a multi-valued field, all bags end to end.
    <field>.offsets.npy  int64 (bags+1,) bag b is values[offsets[b]:offsets[b+1]];
                         int64 because values can outgrow int32 on the largest datasets.
    <field>.bag.npy      int32 (N,) the bag of each row; bag 0 is the empty bag.
    user_ids.npy         int64 (users,) the raw MovieLens id of each user code (-1 for 0);
    item_ids.npy         int64 (items,) likewise for item codes.
    label.npy            float32 (N,) the rating in stars.
    split.npy            uint8 (N,) 0 train, 1 valid, 2 test.
    items.tsv            code, item id, title, genres of every movie with a code.
    meta.json            fields, sizes, split sizes, train mean, provenance, seed.
Invariants are checked once, here, when written; readers trust them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from loguru import logger

from deepfm_rec.data.errors import DataError
from deepfm_rec.data.layouts import Tables, read_tables
from deepfm_rec.data.sources import read_provenance, spec_for
from deepfm_rec.data.users import read_users

FORMAT_VERSION = 1
SPLITS = {"train": 0, "valid": 1, "test": 2}
CATEGORICAL, DENSE, MULTI = "categorical", "dense", "multi"


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


def open_encoded(folder: Path) -> Encoded:
    """Open an encoded folder with every array memory-mapped read-only."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    arrays = {p.name[:-4]: np.load(p, mmap_mode="r") for p in sorted(folder.glob("*.npy"))}
    return Encoded(folder=folder, meta=meta, arrays=arrays)


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


def split_rows(n: int, valid: float, test: float, seed: int) -> np.ndarray:
    """uint8 split code per row: a seeded random permutation cut into test, valid, train."""
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_valid = round(n * test), round(n * valid)
    split = np.zeros(n, dtype=np.uint8)
    split[order[:n_test]] = SPLITS["test"]
    split[order[n_test : n_test + n_valid]] = SPLITS["valid"]
    return split


def _check(arrays: dict[str, np.ndarray], fields: list[dict], n: int) -> None:
    """The format's invariants; a failure here is a bug in this module."""
    for f in fields:
        name = f["name"]
        if f["kind"] == CATEGORICAL:
            codes = arrays[name]
            assert codes.shape == (n,) and codes.dtype == np.int32, name
            assert codes.min(initial=0) >= 0 and codes.max(initial=0) < f["vocab_size"], name
        elif f["kind"] == DENSE:
            assert arrays[name].shape == (n,) and np.isfinite(arrays[name]).all(), name
        else:
            values, offsets = arrays[f"{name}.values"], arrays[f"{name}.offsets"]
            bag = arrays[f"{name}.bag"]
            assert offsets[0] == 0 and offsets[1] == 0, f"{name}: bag 0 must be empty"
            assert offsets[-1] == len(values), f"{name}: offsets[-1] != len(values)"
            assert (np.diff(offsets) >= 0).all(), f"{name}: offsets decrease"
            assert bag.shape == (n,) and 0 <= bag.min(initial=0), name
            assert bag.max(initial=0) < len(offsets) - 1, f"{name}: bag out of range"
            assert values.min(initial=1) >= 1 and values.max(initial=0) < f["vocab_size"], name
    assert arrays["label"].shape == (n,) and arrays["split"].shape == (n,)


def encode(
    tables: Tables,
    users: pd.DataFrame,
    out: Path,
    *,
    seed: int,
    valid_fraction: float,
    test_fraction: float,
    provenance: dict,
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

    Returns:
        The meta dict written to meta.json.
    """
    ratings = tables.ratings
    n = len(ratings)
    split = split_rows(n, valid_fraction, test_fraction, seed)
    for name, code in SPLITS.items():
        if not (split == code).any():
            raise DataError(
                f"{n} ratings: config key 'split' (valid {valid_fraction}, test "
                f"{test_fraction}) leaves the {name} split empty"
            )
    train = split == SPLITS["train"]
    arrays: dict[str, np.ndarray] = {"split": split}
    fields: list[dict] = []

    user_raw = ratings["user"].to_numpy()
    item_raw = ratings["item"].to_numpy()
    user_vocab = np.unique(user_raw[train])
    item_vocab = np.unique(item_raw[train])
    arrays["user"] = _codes(user_raw, user_vocab)
    arrays["item"] = _codes(item_raw, item_vocab)
    # code -> raw MovieLens id (code 0, unknown, maps to -1)
    arrays["user_ids"] = np.concatenate([[-1], user_vocab]).astype(np.int64)
    arrays["item_ids"] = np.concatenate([[-1], item_vocab]).astype(np.int64)
    fields += [
        {"name": "user", "kind": CATEGORICAL, "vocab_size": len(user_vocab) + 1},
        {"name": "item", "kind": CATEGORICAL, "vocab_size": len(item_vocab) + 1},
    ]

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
                    "vocab_size": len(vocab) + 1,
                    "vocabulary": vocab.tolist(),
                }
            )
        age = np.concatenate([[np.nan], users["age"].to_numpy(np.float64)])[row_of_user]
        known = ~np.isnan(age)
        mean = float(age[known & train].mean())
        std = float(age[known & train].std()) or 1.0
        arrays["age"] = np.where(known, (age - mean) / std, 0.0).astype(np.float32)
        fields.append({"name": "age", "kind": DENSE, "mean": mean, "std": std})

    # genres: one bag per movie of the movies table, in item-id order.
    movies = tables.movies.sort_values("item").drop_duplicates("item")
    genre_vocab = np.unique([g for gs in movies["genres"] for g in gs]).astype(str)
    genre_bags = [_codes(np.asarray(gs, dtype=str), genre_vocab) for gs in movies["genres"]]
    values, offsets = _ragged(genre_bags)
    arrays["genres.values"], arrays["genres.offsets"] = values, offsets
    movie_ids = movies["item"].to_numpy()
    arrays["genres.bag"] = _codes(item_raw, movie_ids)  # row -> 1 + movie position
    fields.append(
        {
            "name": "genres",
            "kind": MULTI,
            "vocab_size": len(genre_vocab) + 1,
            "vocabulary": genre_vocab.tolist(),
        }
    )

    # tags: one bag per rated (user, movie) pair; vocabulary from train rows' tags.
    row_key = user_raw.astype(np.int64) * (1 << 32) + item_raw.astype(np.int64)
    tags = tables.tags.assign(tag=tables.tags["tag"].astype(str).str.strip().str.lower())
    tags = tags[tags["tag"] != ""]
    tag_key = tags["user"].to_numpy(np.int64) * (1 << 32) + tags["item"].to_numpy(np.int64)
    order = np.argsort(row_key, kind="stable")
    pos = np.searchsorted(row_key[order], tag_key)
    pos = np.minimum(pos, n - 1)
    hit = row_key[order][pos] == tag_key
    tag_row = order[pos[hit]]
    tags = tags[hit].assign(row=tag_row)
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
    fields.append({"name": "tags", "kind": MULTI, "vocab_size": len(tag_vocab) + 1})

    arrays["label"] = ratings["rating"].to_numpy(np.float32)
    _check(arrays, fields, n)

    label = arrays["label"]
    meta = {
        "format_version": FORMAT_VERSION,
        "rows": n,
        "fields": fields,
        "splits": {name: int((split == code).sum()) for name, code in SPLITS.items()},
        "train_mean": float(label[train].mean(dtype=np.float64)),
        "rating_min": float(label.min()),
        "rating_max": float(label.max()),
        "users_origin": sorted(set(users["origin"])) if len(users) else [],
        "seed": seed,
        **provenance,
    }

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array)
        pd.DataFrame(
            {
                "code": np.arange(1, len(item_vocab) + 1),
                "item": item_vocab,
            }
        ).merge(movies[["item", "title", "genres"]], how="left", on="item").assign(
            genres=lambda d: d["genres"].map(lambda g: "|".join(g) if isinstance(g, list) else "")
        ).to_csv(staging / "items.tsv", sep="\t", index=False)
        (staging / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("encoded {} rows ({}) into {}", n, meta["splits"], out)
    return meta


def encode_dataset(
    raw: str | Path,
    users: str | Path,
    out: str | Path,
    *,
    dataset: str,
    seed: int,
    valid_fraction: float,
    test_fraction: float,
) -> dict:
    """Parse the fetched dataset in `raw`, join the users table and encode it into `out`."""
    tables = read_tables(Path(raw), spec_for(dataset).layout)
    return encode(
        tables,
        read_users(users),
        Path(out),
        seed=seed,
        valid_fraction=valid_fraction,
        test_fraction=test_fraction,
        provenance=read_provenance(Path(raw)),
    )
