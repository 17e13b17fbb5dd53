"""Parsers, one per upstream MovieLens layout, all giving the same canonical tables.

Canonical tables (pandas DataFrames):
    ratings: user (int64), item (int64), rating (float32 stars), timestamp (int64)
    movies:  item (int64), title (str), genres (list[str]; empty for "(no genres listed)")
    tags:    user (int64), item (int64), tag (str)
    users:   user (int64), gender (str), age (int64 years), occupation (str); None when
             the archive has no demographics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from deepfm_rec.data.errors import DataError

NO_GENRES = "(no genres listed)"


@dataclass
class Tables:
    """The canonical tables of one dataset."""

    ratings: pd.DataFrame
    movies: pd.DataFrame
    tags: pd.DataFrame
    users: pd.DataFrame | None = None


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: missing file (expected in the dataset folder)")
    return path


def _numeric(df: pd.DataFrame, column: str, path: Path, first_line: int) -> pd.Series:
    """Column as numbers; the first non-numeric value is reported with its line number."""
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise DataError(
            f"{path}:{row + first_line}: {column} is not a number: {df[column].iloc[row]!r}"
        )
    return values


def _check_ratings(ratings: pd.DataFrame, path: Path, first_line: int) -> pd.DataFrame:
    if ratings.empty:
        raise DataError(f"{path}: no ratings (the file is empty)")
    bad = ~ratings["rating"].between(0.5, 5.0).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise DataError(
            f"{path}:{row + first_line}: rating {ratings['rating'].iloc[row]} "
            "is outside the 0.5-5 star scale"
        )
    return ratings


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(_require(path), dtype=str, keep_default_na=False, encoding="utf-8")
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: malformed CSV: {error}") from error
    except pd.errors.EmptyDataError as error:
        raise DataError(f"{path}: empty file, expected a header {','.join(columns)}") from error
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: header lacks column(s) {', '.join(missing)}")
    return df


def read_csv_layout(folder: Path) -> Tables:
    """ml-20m, ml-25m, ml-32m and ml-latest(-small): CSV files with a header row."""
    folder = Path(folder)
    path = folder / "ratings.csv"
    raw = _read_csv(path, ["userId", "movieId", "rating", "timestamp"])
    ratings = pd.DataFrame(
        {
            "user": _numeric(raw, "userId", path, 2).astype("int64"),
            "item": _numeric(raw, "movieId", path, 2).astype("int64"),
            "rating": _numeric(raw, "rating", path, 2).astype("float32"),
            "timestamp": _numeric(raw, "timestamp", path, 2).astype("int64"),
        }
    )
    _check_ratings(ratings, path, 2)

    path = folder / "movies.csv"
    raw = _read_csv(path, ["movieId", "title", "genres"])
    movies = pd.DataFrame(
        {
            "item": _numeric(raw, "movieId", path, 2).astype("int64"),
            "title": raw["title"],
            "genres": [[] if g in ("", NO_GENRES) else g.split("|") for g in raw["genres"]],
        }
    )

    path = folder / "tags.csv"
    if path.exists():
        raw = _read_csv(path, ["userId", "movieId", "tag"])
        tags = pd.DataFrame(
            {
                "user": _numeric(raw, "userId", path, 2).astype("int64"),
                "item": _numeric(raw, "movieId", path, 2).astype("int64"),
                "tag": raw["tag"],
            }
        )
    else:
        tags = pd.DataFrame({"user": [], "item": [], "tag": []}).astype(
            {"user": "int64", "item": "int64", "tag": str}
        )
    return Tables(ratings=ratings, movies=movies, tags=tags)


PARSERS = {
    "csv": read_csv_layout,
}


def read_tables(folder: Path, layout: str) -> Tables:
    """Parse an unpacked dataset folder of the given layout into canonical tables."""
    try:
        parser = PARSERS[layout]
    except KeyError:
        raise DataError(f"unknown layout {layout!r}; known: {', '.join(PARSERS)}") from None
    return parser(Path(folder))
