"""User demographics: the archive's own where it has them, else seeded synthetic ones.

MovieLens 10M and the CSV datasets have no demographics. Synthetic users draw gender,
age bracket and occupation independently from ml-1m's marginal distributions with a
seeded generator, so a run is reproducible and the fields carry no rating signal (a
model that gains from them is overfitting).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from loguru import logger

from deepfm_rec.data.errors import DataError
from deepfm_rec.data.layouts import ML1M_OCCUPATIONS, read_canonical
from deepfm_rec.data.staging import writing

COLUMNS = ["user", "gender", "age", "occupation", "origin"]
MODES = ("auto", "real", "synthetic", "none")

# ml-1m's marginals: gender counts, age brackets (lower bound in years) and the
# 21 occupations of its README (names shared with the ml-1m parser), with user counts.
GENDERS = {"M": 4331, "F": 1709}
AGES = {1: 222, 18: 1103, 25: 2096, 35: 1193, 45: 550, 50: 496, 56: 380}
# user counts of ml-1m's occupations, in the code order of its README (ML1M_OCCUPATIONS)
OCCUPATION_COUNTS = (
    711,
    528,
    267,
    173,
    759,
    112,
    236,
    679,
    17,
    92,
    195,
    129,
    388,
    142,
    302,
    144,
    241,
    502,
    70,
    72,
    281,
)
OCCUPATIONS = dict(zip(ML1M_OCCUPATIONS, OCCUPATION_COUNTS, strict=True))


def _draw(rng: np.random.Generator, counts: dict, n: int) -> np.ndarray:
    keys = np.array(list(counts))
    p = np.array(list(counts.values()), dtype=np.float64)
    return keys[rng.choice(len(keys), size=n, p=p / p.sum())]


def synthesize(user_ids: np.ndarray, seed: int) -> pd.DataFrame:
    """Seeded demographics for the given users (sorted, so the order of input is moot)."""
    users = np.unique(np.asarray(user_ids, dtype=np.int64))
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user": users,
            "gender": _draw(rng, GENDERS, len(users)),
            "age": _draw(rng, AGES, len(users)).astype(np.int64),
            "occupation": _draw(rng, OCCUPATIONS, len(users)),
            "origin": "synthetic",
        }
    )


def build_users(
    rated_users: np.ndarray, real: pd.DataFrame | None, mode: str, seed: int
) -> pd.DataFrame:
    """The users table (COLUMNS) for the rated users.

    Args:
        rated_users: user ids that appear in the ratings.
        real: the archive's demographics (canonical users table) or None.
        mode: auto (real where present, else synthetic), real, synthetic, or none
            (an empty table: the model gets no demographic fields).
        seed: the generator's seed for synthetic users.
    """
    if mode not in MODES:
        raise DataError(f"config key 'users': {mode!r} is not one of {', '.join(MODES)}")
    if mode == "none":
        return pd.DataFrame(columns=COLUMNS)
    if mode == "real" and real is None:
        raise DataError("config key 'users': 'real' asked, but this dataset has no demographics")
    if real is not None and mode in ("auto", "real"):
        table = real.assign(origin="real")
        return table[table["user"].isin(rated_users)][COLUMNS].reset_index(drop=True)
    return synthesize(rated_users, seed)


def write_users(raw: str | Path, out: str | Path, *, dataset: str, mode: str, seed: int) -> None:
    """Write the users table (COLUMNS) of the dataset fetched into `raw`, as TSV."""
    tables = read_canonical(Path(raw))
    users = build_users(tables.ratings["user"].unique(), tables.users, mode, seed)
    with writing(out):
        users.to_csv(out, sep="\t", index=False)
    origin = ", ".join(sorted(set(users["origin"]))) or "none"
    logger.info("{}: {} users, demographics {}", dataset, len(users), origin)


def read_users(path: str | Path) -> pd.DataFrame:
    """A users table written by write_users."""
    return pd.read_csv(
        path, sep="\t", dtype={"gender": str, "occupation": str}, keep_default_na=False
    )
