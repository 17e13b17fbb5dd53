"""Parsers, one per upstream MovieLens layout, all giving the same canonical tables, and
those tables written and read again as parquet (what `download` leaves in resources/).

Canonical tables (pandas DataFrames):
    ratings: user (int64), item (int64), rating (float32 stars), timestamp (int64)
    movies:  item (int64), title (str), genres (list[str]; empty for "(no genres listed)")
    tags:    user (int64), item (int64), tag (str)
    users:   user (int64), gender (str), age (int64 years), occupation (str); None when
             the archive has no demographics. ml-1m gives the lower bound of an age
             bracket (1 means under 18) and an occupation code, mapped to its name here.

Validation policy: every parser raises DataError, naming the file and line, for a line
with the wrong number of fields, a value that is not a number where one is expected (or
not a whole number where an id or a timestamp is), a rating outside 0.5-5 stars, an
empty ratings file and a missing required file. A (user, movie) pair rated more than
once keeps its latest rating, with a warning.
Ratings files (up to tens of millions of lines) are parsed by pandas' C reader; the
small text files (movies, tags, users) line by line.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from loguru import logger

from deepfm_rec.data.errors import DataError

NO_GENRES = "(no genres listed)"
# the headerless files of numbers (read by _read_numbers): separator, and an encoding that
# decodes any byte (their fields are ASCII numbers; ml-10m's are UTF-8 too)
HEADERLESS = {"u.data": ("\t", "latin-1"), "ratings.dat": ("::", "latin-1")}
YEAR_2100 = 4_102_444_800  # Unix time of 2100-01-01: a rating's time is 1970-2099

# The line of a file's first data row, or the line each data row starts on (a quoted CSV
# field may span lines).
Lines = int | np.ndarray

# After a line break in a field: an id and a comma, or the end of the file (see _runs_on).
_RUN_ON = re.compile(r"[\r\n](?:\d+,|\s*\Z)")

# u.genre of ml-100k, the order of the 19 genre flags of u.item.
ML100K_GENRES = tuple(
    "unknown|Action|Adventure|Animation|Children's|Comedy|Crime|Documentary|Drama|Fantasy|"
    "Film-Noir|Horror|Musical|Mystery|Romance|Sci-Fi|Thriller|War|Western".split("|")
)

# ml-1m's README: occupation code -> name, code 0 first (also the synthetic users').
ML1M_OCCUPATIONS = tuple(
    "other|academic/educator|artist|clerical/admin|college/grad student|customer service|"
    "doctor/health care|executive/managerial|farmer|homemaker|K-12 student|lawyer|"
    "programmer|retired|sales/marketing|scientist|self-employed|technician/engineer|"
    "tradesman/craftsman|unemployed|writer".split("|")
)

# ml-1m's README: age brackets by their lower bound in years (1 means under 18).
ML1M_AGES = (1, 18, 25, 35, 45, 50, 56)


@dataclass
class Tables:
    """The canonical tables of one dataset."""

    ratings: pd.DataFrame
    movies: pd.DataFrame
    tags: pd.DataFrame
    users: pd.DataFrame | None = None


def quote(value: object, limit: int = 80) -> str:
    """A value for an error message: a str by its repr, a number as it is; a long value by
    its first `limit` characters and its length (a 10 MB field must not make a 10 MB line)."""
    text = str(value)
    shown = repr(text[:limit]) if isinstance(value, str) else text[:limit]
    return shown if len(text) <= limit else f"{shown}… ({len(text):,} characters)"


def _require(path: Path) -> Path:
    if path.exists() and not path.is_file():  # a FIFO would block the read for ever
        raise DataError(f"{path}: not a regular file (a folder, a FIFO, a device?)")
    if not path.is_file():
        raise DataError(f"{path}: missing file (expected in the dataset folder)")
    return path


def _line(lines: Lines, row: int) -> int:
    """The line (from 1) that data row `row` starts on."""
    return int(lines[row]) if isinstance(lines, np.ndarray) else lines + row


def _numeric(df: pd.DataFrame, column: str, path: Path, lines: Lines) -> pd.Series:
    """Column as numbers; the first non-numeric value is reported with its line number."""
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise DataError(
            f"{path}:{_line(lines, row)}: {column} is not a number: {quote(df[column].iloc[row])}"
        )
    return values


def _integer(
    df: pd.DataFrame, column: str, path: Path, lines: Lines, *, signed: bool = True
) -> pd.Series:
    """Column as int64 (ids, timestamps); a value that is not a whole number, or not one
    int64 holds, or negative where not `signed` (ids), is reported with its line number
    rather than truncated or wrapped."""
    values = _numeric(df, column, path, lines)
    for bad, problem in [
        ((values % 1 != 0).to_numpy(), "is not a whole number"),
        (((values >= 2**63) | (values < -(2**63))).to_numpy(), "is out of the int64 range"),
        ((values < 0).to_numpy() & (not signed), "is negative"),
    ]:
        if bad.any():
            row = int(bad.argmax())
            raise DataError(
                f"{path}:{_line(lines, row)}: {column} {problem}: {quote(df[column].iloc[row])}"
            )
    if df[column].dtype.kind == "f":  # whole numbers, but 1e3 or 1.0 made the column float
        if path.suffix == ".csv":
            text = pd.read_csv(path, usecols=[column], dtype=str, keep_default_na=False)
            cells = text[column].iloc[: len(df)].tolist()
        else:  # the headerless files of numbers (u.data, ratings.dat), column by position
            sep, encoding = HEADERLESS[path.name]
            j = list(df.columns).index(column)
            cells = [fields[j] for fields in _records(path, df.shape[1], sep, encoding)]
        row = next(r for r, cell in enumerate(cells) if not re.fullmatch(r"-?[0-9]+", cell))
        raise DataError(
            f"{path}:{_line(lines, row)}: {column} is not written as a whole number: "
            f"{quote(cells[row])}"
        )
    return values.astype("int64")


def _id(df: pd.DataFrame, column: str, path: Path, lines: Lines) -> pd.Series:
    """An id column: int64 and not negative (MovieLens ids count from 1)."""
    return _integer(df, column, path, lines, signed=False)


def _check_values(values: pd.Series, allowed: Iterable, name: str, path: Path, lines: Lines):
    """The first value outside `allowed` is reported with its line number."""
    allowed = list(allowed)
    bad = ~values.isin(allowed).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise DataError(
            f"{path}:{_line(lines, row)}: {name} {quote(values.iloc[row])} is not one of "
            f"{', '.join(map(str, allowed))}"
        )


def _check_movies(movies: pd.DataFrame, ratings: pd.DataFrame, path: Path, lines: Lines):
    """A movie id listed twice is an error; rated movies the file lacks, a warning (they
    get no title, genres or release year)."""
    twice = movies["item"].duplicated().to_numpy()
    if twice.any():
        row = int(twice.argmax())
        first = int(np.flatnonzero(movies["item"].to_numpy() == movies["item"].iloc[row])[0])
        raise DataError(
            f"{path}:{_line(lines, row)}: movie {movies['item'].iloc[row]} is listed again "
            f"(first on line {_line(lines, first)})"
        )
    unknown = np.setdiff1d(ratings["item"].unique(), movies["item"].to_numpy())
    if len(unknown):
        logger.warning(
            "{}: rated movies not in it: {} (ids {}{}); they get no title or genres",
            path,
            len(unknown),
            ", ".join(map(str, unknown[:5])),
            ", …" if len(unknown) > 5 else "",
        )


def _check_ratings(ratings: pd.DataFrame, path: Path, lines: Lines) -> pd.DataFrame:
    """The ratings, checked, with one rating per (user, movie) pair: the latest (on a tie in
    time, the later line), so that a pair cannot be both trained on and tested."""
    if ratings.empty:
        raise DataError(f"{path}: no ratings (the file is empty)")
    bad = ~ratings["rating"].between(0.5, 5.0).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise DataError(
            f"{path}:{_line(lines, row)}: rating {ratings['rating'].iloc[row]} "
            "is outside the 0.5-5 star scale"
        )
    by_time = ratings.sort_values("timestamp", kind="stable")  # ties stay in line order
    earlier = by_time.duplicated(["user", "item"], keep="last").sort_index().to_numpy()
    if earlier.any():
        logger.warning(
            "{}: {} duplicate ratings of a (user, movie) pair dropped; each pair keeps its "
            "latest rating",
            path,
            int(earlier.sum()),
        )
        ratings = ratings[~earlier].reset_index(drop=True)
    return ratings


def _ratings(raw: pd.DataFrame, columns: list[str], path: Path, lines: Lines) -> pd.DataFrame:
    """Canonical ratings from the raw columns holding user, item, rating, timestamp."""
    user, item, rating, timestamp = columns
    ratings = pd.DataFrame(
        {
            "user": _id(raw, user, path, lines),
            "item": _id(raw, item, path, lines),
            "rating": _numeric(raw, rating, path, lines).astype("float32"),
            "timestamp": _integer(raw, timestamp, path, lines),
        }
    )
    # a time far outside MovieLens' years would dominate movie_age's and rating_year's std
    bad = ~ratings["timestamp"].between(0, YEAR_2100 - 1).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise DataError(
            f"{path}:{_line(lines, row)}: {timestamp} {ratings['timestamp'].iloc[row]} is "
            "outside 1970-2099 (Unix time in seconds)"
        )
    return _check_ratings(ratings, path, lines)


def _genre_lists(genres: pd.Series, path: Path) -> list[list[str]]:
    """`|`-joined genre names as lists; "(no genres listed)" is the empty list. An empty
    name (`Action||Comedy`, a `|` at either end) is no genre: dropped, with a warning."""
    lists = [[] if g in ("", NO_GENRES) else g.split("|") for g in genres]
    empty = sum(name == "" for names in lists for name in names)
    if empty:
        logger.warning(
            "{}: {} empty genre names dropped (a '|' doubled or at either end)", path, empty
        )
        lists = [[name for name in names if name] for names in lists]
    return lists


def _no_tags() -> pd.DataFrame:
    return pd.DataFrame({"user": [], "item": [], "tag": []}).astype(
        {"user": "int64", "item": "int64", "tag": str}
    )


def _has_gaps(df: pd.DataFrame) -> bool:
    """Whether a text column has an empty value: what a line with too few fields leaves."""
    text = df.select_dtypes(exclude="number")
    return bool((text == "").to_numpy().any())


def _has_line_breaks(df: pd.DataFrame) -> bool:
    """Whether a text value spans lines: what a quote left open does in a CSV file."""
    text = df.select_dtypes(exclude="number")
    return any(text[c].astype(str).str.contains("[\r\n]").any() for c in text.columns)


def _lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """(line number from 1, text without the line break) of each line of a text file."""
    with open(_require(path), "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                yield number, raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise DataError(f"{path}:{number}: not valid {encoding}: {error}") from None


def _records(
    path: Path, n_fields: int, sep: str, encoding: str, text_field: int | None = None
) -> Iterator[list[str]]:
    """The fields of each line; a line without exactly n_fields fields is a DataError.

    text_field: index of a free-text field (a title, a tag) that may itself contain
    `sep`: the fields before it are split off from the left, those after from the right.
    """
    for number, line in _lines(path, encoding):
        if text_field is None:
            fields = line.split(sep)
        else:
            *head, rest = line.split(sep, text_field)
            fields = [*head, *rest.rsplit(sep, n_fields - text_field - 1)]
        if len(fields) != n_fields:
            raise DataError(
                f"{path}:{number}: expected {n_fields} fields separated by {sep!r}, "
                f"found {len(fields)}"
            )
        yield fields


def _read_lines(
    path: Path, names: list[str], sep: str, encoding: str, text_field: int | None = None
) -> pd.DataFrame:
    """A small headerless text file as str columns `names`, row r from line r + 1."""
    rows = list(_records(path, len(names), sep, encoding, text_field))
    return pd.DataFrame(rows, columns=names, dtype=str)


def _read_numbers(path: Path, names: list[str], sep: str, encoding: str) -> pd.DataFrame:
    """A large headerless file of numbers as columns `names`, row r from line r + 1.

    pandas' C reader takes one-character separators only, so `::` becomes a tab first (a
    tab already in such a file is an error, with its line). If the reader fails or leaves
    a value empty, the file is re-read line by line so that a line with the wrong field
    count is named.
    """
    data = _require(path).read_bytes()
    if sep != "\t" and b"\t" in data:
        line = data[: data.index(b"\t")].count(b"\n") + 1
        raise DataError(f"{path}:{line}: a tab inside a line (fields are separated by {sep!r})")
    data = data.replace(sep.encode(), b"\t")
    try:
        df = pd.read_csv(
            io.BytesIO(data),
            sep="\t",
            header=None,
            engine="c",
            encoding=encoding,
            encoding_errors="replace",
            quoting=csv.QUOTE_NONE,
            keep_default_na=False,
            skip_blank_lines=False,
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame({name: pd.Series(dtype=str) for name in names})
    except pd.errors.ParserError:
        df = None
    if df is None or df.shape[1] != len(names) or _has_gaps(df):
        for _ in _records(path, len(names), sep, encoding):  # raises at a short or long line
            pass
    if df is None or df.shape[1] != len(names):
        raise DataError(f"{path}: not {len(names)} fields separated by {sep!r} on every line")
    df.columns = names
    return df


def _runs_on(field: str) -> bool:
    """Whether a quoted field ran on past its line because its quote was left open: after
    one of its line breaks comes what begins a record (an id and a comma) or the end of the
    file. A title may hold a line break; no MovieLens field holds a record."""
    return ("\n" in field or "\r" in field) and _RUN_ON.search(field) is not None


def _scan_csv(path: Path) -> np.ndarray:
    """The line each data record of a CSV file starts on (a quoted field may span lines);
    a DataError at the first bad record, naming the line it starts on: a field count
    unlike the header's, or a quote left open (see _runs_on)."""
    for _ in _lines(path, "utf-8"):  # names the line of a byte that is not utf-8
        pass
    starts = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        n_fields = len(next(reader, []))
        line = reader.line_num + 1
        blank = None  # the first of the blank lines since the last record
        try:
            for fields in reader:
                if not fields:  # valid at the end of the file only
                    blank = blank or line
                    line = reader.line_num + 1
                    continue
                if blank:
                    raise DataError(
                        f"{path}:{blank}: expected {n_fields} comma-separated "
                        "fields, found 0 (a blank line)"
                    )
                if any(_runs_on(f) for f in fields):
                    raise DataError(f"{path}:{line}: a quote opened on this line is not closed")
                if len(fields) != n_fields:
                    raise DataError(
                        f"{path}:{line}: expected {n_fields} comma-separated fields, "
                        f"found {len(fields)}"
                    )
                starts.append(line)
                line = reader.line_num + 1
        except csv.Error as error:  # e.g. a field larger than the csv module's limit
            raise DataError(f"{path}:{line}: {error} (a quote left open?)") from None
    return np.array(starts, dtype=np.int64)


def _read_csv(path: Path, columns: list[str], text: bool) -> tuple[pd.DataFrame, Lines]:
    """A CSV file with a header, and the lines of its rows; numbers parsed by the C reader
    unless `text` (all str)."""
    try:
        df = pd.read_csv(
            _require(path),
            dtype=str if text else None,
            keep_default_na=False,
            encoding="utf-8",
            skip_blank_lines=False,
        )
    except UnicodeDecodeError:
        df = None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file, expected a header {','.join(columns)}") from None
    except pd.errors.ParserError:
        df = None
    while df is not None and len(df) and ((df.iloc[-1] == "") | df.iloc[-1].isna()).all():
        df = df.iloc[:-1]  # a blank line at the end is valid CSV: no row
    lines: Lines = 2  # row r on line r + 2, unless a quoted field spans lines
    if df is None or _has_gaps(df) or _has_line_breaks(df):
        lines = _scan_csv(path)
    if df is None:
        raise DataError(f"{path}: malformed CSV")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: header lacks column(s) {', '.join(missing)}")
    return df, lines


def read_csv_layout(folder: Path) -> Tables:
    """ml-20m, ml-25m, ml-32m and ml-latest(-small): CSV files with a header row."""
    folder = Path(folder)
    path = folder / "ratings.csv"
    columns = ["userId", "movieId", "rating", "timestamp"]
    raw, lines = _read_csv(path, columns, text=False)
    ratings = _ratings(raw, columns, path, lines)

    path = folder / "movies.csv"
    raw, lines = _read_csv(path, ["movieId", "title", "genres"], text=True)
    movies = pd.DataFrame(
        {
            "item": _id(raw, "movieId", path, lines),
            "title": raw["title"],
            "genres": _genre_lists(raw["genres"], path),
        }
    )
    _check_movies(movies, ratings, path, lines)

    path = folder / "tags.csv"
    tags = _no_tags()
    if path.exists():
        raw, lines = _read_csv(path, ["userId", "movieId", "tag"], text=True)
        tags = pd.DataFrame(
            {
                "user": _id(raw, "userId", path, lines),
                "item": _id(raw, "movieId", path, lines),
                "tag": raw["tag"],
            }
        )
    return Tables(ratings=ratings, movies=movies, tags=tags)


def _read_dat_layout(folder: Path, encoding: str) -> Tables:
    """ratings.dat, movies.dat and, if present, tags.dat of ml-1m and ml-10m (`::`)."""
    path = folder / "ratings.dat"
    columns = ["UserID", "MovieID", "Rating", "Timestamp"]
    ratings = _ratings(_read_numbers(path, columns, "::", encoding), columns, path, 1)

    path = folder / "movies.dat"
    raw = _read_lines(path, ["MovieID", "Title", "Genres"], "::", encoding, text_field=1)
    movies = pd.DataFrame(
        {
            "item": _id(raw, "MovieID", path, 1),
            "title": raw["Title"],
            "genres": _genre_lists(raw["Genres"], path),
        }
    )
    _check_movies(movies, ratings, path, 1)

    path = folder / "tags.dat"
    tags = _no_tags()
    if path.exists():
        columns = ["UserID", "MovieID", "Tag", "Timestamp"]
        raw = _read_lines(path, columns, "::", encoding, text_field=2)
        tags = pd.DataFrame(
            {
                "user": _id(raw, "UserID", path, 1),
                "item": _id(raw, "MovieID", path, 1),
                "tag": raw["Tag"],
            }
        )
    return Tables(ratings=ratings, movies=movies, tags=tags)


def read_ml1m(folder: Path) -> Tables:
    """ml-1m: ratings.dat, movies.dat, users.dat (`::`, latin-1), real demographics."""
    folder = Path(folder)
    tables = _read_dat_layout(folder, "latin-1")
    path = folder / "users.dat"
    columns = ["UserID", "Gender", "Age", "Occupation", "Zip-code"]
    raw = _read_lines(path, columns, "::", "latin-1")
    _check_values(raw["Gender"], ("M", "F"), "Gender", path, 1)
    _check_values(raw["Age"], map(str, ML1M_AGES), "Age", path, 1)
    codes = map(str, range(len(ML1M_OCCUPATIONS)))
    _check_values(raw["Occupation"], codes, "Occupation", path, 1)
    tables.users = pd.DataFrame(
        {
            "user": _id(raw, "UserID", path, 1),
            "gender": raw["Gender"],
            "age": raw["Age"].astype("int64"),
            "occupation": [ML1M_OCCUPATIONS[int(code)] for code in raw["Occupation"]],
        }
    )
    return tables


def read_ml10m(folder: Path) -> Tables:
    """ml-10m (the files of ml-10M100K/): ratings.dat, movies.dat, tags.dat (`::`, UTF-8)."""
    return _read_dat_layout(Path(folder), "utf-8")


def read_ml100k(folder: Path) -> Tables:
    """ml-100k: u.data (tab), u.item and u.user (`|`, latin-1), genre names from u.genre.

    u.item's "unknown" genre flag marks a movie without genres: it is never a genre.
    """
    folder = Path(folder)
    path = folder / "u.data"
    columns = ["user id", "item id", "rating", "timestamp"]
    ratings = _ratings(_read_numbers(path, columns, "\t", "latin-1"), columns, path, 1)

    path = folder / "u.genre"
    genres = list(ML100K_GENRES)
    if path.exists():  # lines "name|flag index", in index order
        genres = [line.split("|")[0] for _, line in _lines(path, "latin-1") if line.strip()]
        if len(genres) != len(ML100K_GENRES):
            raise DataError(f"{path}: {len(genres)} genres, expected {len(ML100K_GENRES)}")

    path = folder / "u.item"
    columns = ["movie id", "movie title", "release date", "video release date", "IMDb URL"]
    raw = _read_lines(path, columns + genres, "|", "latin-1", text_field=1)
    for genre in genres:
        _check_values(raw[genre], ("0", "1"), f"flag {genre}", path, 1)
    flags = raw[genres].to_numpy() == "1"
    movies = pd.DataFrame(
        {
            "item": _id(raw, "movie id", path, 1),
            "title": raw["movie title"],
            "genres": [
                [g for g, on in zip(genres, row, strict=True) if on and g != "unknown"]
                for row in flags
            ],
        }
    )
    _check_movies(movies, ratings, path, 1)

    path = folder / "u.user"
    raw = _read_lines(path, ["user id", "age", "gender", "occupation", "zip code"], "|", "latin-1")
    _check_values(raw["gender"], ("M", "F"), "gender", path, 1)
    users = pd.DataFrame(
        {
            "user": _id(raw, "user id", path, 1),
            "gender": raw["gender"],
            "age": _integer(raw, "age", path, 1),
            "occupation": raw["occupation"],
        }
    )
    return Tables(ratings=ratings, movies=movies, tags=_no_tags(), users=users)


PARSERS = {
    "ml-100k": read_ml100k,
    "ml-1m": read_ml1m,
    "ml-10m": read_ml10m,
    "csv": read_csv_layout,
}


def read_tables(folder: Path, layout: str) -> Tables:
    """Parse an unpacked dataset folder of the given layout into canonical tables."""
    try:
        parser = PARSERS[layout]
    except KeyError:
        raise DataError(f"unknown layout {layout!r}; known: {', '.join(PARSERS)}") from None
    return parser(Path(folder))


# The canonical tables as `download` writes them, one <name>.parquet each (users only
# where the data has demographics): columnar, typed, read in a fraction of a parse.
CANONICAL = ("ratings", "movies", "tags", "users")


def write_canonical(tables: Tables, folder: Path) -> None:
    """Write the canonical tables into `folder` as <name>.parquet (see read_canonical)."""
    for name in CANONICAL:
        table = getattr(tables, name)
        if table is not None:
            table.to_parquet(Path(folder) / f"{name}.parquet", index=False)


def read_canonical(folder: Path) -> Tables:
    """The canonical tables that write_canonical wrote into a fetched dataset folder."""
    folder = Path(folder)
    if not (folder / "ratings.parquet").is_file():
        raise DataError(
            f"{folder}: no ratings.parquet (fetched by an older version, or not by download); "
            "fetch it again (snakemake --forcerun download)"
        )
    tables = {
        name: pd.read_parquet(folder / f"{name}.parquet")
        for name in CANONICAL
        if (folder / f"{name}.parquet").is_file()
    }
    tables["movies"]["genres"] = tables["movies"]["genres"].map(list)  # parquet gives arrays
    return Tables(**tables)
