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

The fields, their kinds and owners, and how each family is built: deepfm_rec.data.fields.

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
from deepfm_rec.data.fields import CATEGORICAL, DENSE, MULTI, Rows, build
from deepfm_rec.data.layouts import Tables, read_canonical
from deepfm_rec.data.sources import read_provenance
from deepfm_rec.data.staging import staged
from deepfm_rec.data.users import read_users

FORMAT_VERSION = 2
SPLITS = {"train": 0, "valid": 1, "test": 2}
SPLIT_METHODS = ("random", "temporal")
# which pairs the implicit-feedback bags hold: the train split's, or every rated pair's
# (the Netflix-prize convention: which movies a user rated is known, not the stars)
IMPLICIT = ("train", "observed")


@dataclass
class Encoded:
    """An opened encoded folder: read-only memmaps and the parsed meta.json."""

    folder: Path
    meta: dict
    arrays: dict[str, np.ndarray]

    def fields(self, kind: str) -> list[dict]:
        """The fields of one kind, in meta order."""
        return [f for f in self.meta["fields"] if f["kind"] == kind]

    def rows(self, split: str, users: np.ndarray | None = None) -> np.ndarray:
        """Row indices (int64) of a split, of the users in `users` alone where given (a
        bool per user code)."""
        rows = np.flatnonzero(self.arrays["split"] == SPLITS[split])
        return rows if users is None else rows[users[np.asarray(self.arrays["user"])[rows]]]

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


def _split(ratings: pd.DataFrame, method: str, valid: float, test: float, seed: int):
    """uint8 split code per rating row (split_rows or split_temporal); a split left empty
    is a DataError naming the config key."""
    if method == "random":
        split = split_rows(len(ratings), valid, test, seed)
    elif method == "temporal":
        user, timestamp = ratings["user"].to_numpy(), ratings["timestamp"].to_numpy()
        split = split_temporal(user, timestamp, valid, test)
    else:
        raise DataError(
            f"config key 'split.method': {method!r} is not one of {', '.join(SPLIT_METHODS)}"
        )
    for name, code in SPLITS.items():
        if not (split == code).any():
            raise DataError(
                f"{len(ratings)} ratings: config key 'split' (valid {valid}, test {test}) "
                f"leaves the {name} split empty"
            )
    return split


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
    if implicit not in IMPLICIT:
        raise DataError(f"config key 'implicit': {implicit!r} is not one of {', '.join(IMPLICIT)}")
    ratings = tables.ratings
    n = len(ratings)
    split = _split(ratings, split_method, valid_fraction, test_fraction, seed)
    train = split == SPLITS["train"]
    rows = Rows(tables, users, train, implicit=implicit, bag_limit=bag_limit, seed=seed)
    arrays, fields = build(rows)
    arrays = {"split": split, **arrays, "label": ratings["rating"].to_numpy(np.float32)}
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
        _items(rows).to_csv(staging / "items.tsv", sep="\t", index=False)
        (staging / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    logger.info("encoded {} rows ({}) into {}", n, meta["splits"], out)
    return meta


def _items(rows: Rows) -> pd.DataFrame:
    """code, item id, title and genres ("|"-joined) of every movie with a code."""
    codes = pd.DataFrame({"code": np.arange(1, len(rows.item_vocab) + 1), "item": rows.item_vocab})
    return codes.merge(rows.movies[["item", "title", "genres"]], how="left", on="item").assign(
        genres=lambda d: d["genres"].map(lambda g: "|".join(g) if isinstance(g, list) else "")
    )


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
