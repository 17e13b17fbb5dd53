"""The layout parsers on hand-written fixture folders, one per upstream layout."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from loguru import logger

from deepfm_rec.data.errors import DataError
from deepfm_rec.data.layouts import (
    ML1M_OCCUPATIONS,
    PARSERS,
    read_canonical,
    read_tables,
    write_canonical,
)
from deepfm_rec.data.sources import DATASETS
from workflow_helpers import FIXTURES, ROOT

# layout -> (fixture folder, ratings file, separator, a dataset of that layout)
LAYOUTS = {
    "ml-100k": (FIXTURES / "ml-100k", "u.data", "\t", "ml-100k"),
    "ml-1m": (FIXTURES / "ml-1m", "ratings.dat", "::", "ml-1m"),
    "ml-10m": (FIXTURES / "ml-10m" / "ml-10M100K", "ratings.dat", "::", "ml-10m"),
    "csv": (FIXTURES / "ml-20m", "ratings.csv", ",", "ml-20m"),
}


def _copy(layout: str, tmp_path: Path) -> Path:
    folder = tmp_path / layout
    shutil.copytree(LAYOUTS[layout][0], folder)
    return folder


def _replace_line(path: Path, number: int, line: str | bytes, encoding: str = "utf-8") -> None:
    """Put `line` in place of line `number` (from 1) of a text file."""
    lines = path.read_bytes().split(b"\n")
    lines[number - 1] = line if isinstance(line, bytes) else line.encode(encoding)
    path.write_bytes(b"\n".join(lines))


def _error(layout: str, folder: Path) -> str:
    with pytest.raises(DataError) as info:
        read_tables(folder, layout)
    message = str(info.value)
    assert "\n" not in message
    return message


def _check_canonical(tables) -> None:
    assert list(tables.ratings.columns) == ["user", "item", "rating", "timestamp"]
    assert [str(t) for t in tables.ratings.dtypes] == ["int64", "int64", "float32", "int64"]
    assert list(tables.movies.columns) == ["item", "title", "genres"]
    assert str(tables.movies["item"].dtype) == "int64"
    assert all(isinstance(g, list) for g in tables.movies["genres"])
    assert list(tables.tags.columns) == ["user", "item", "tag"]
    assert [str(t) for t in tables.tags[["user", "item"]].dtypes] == ["int64", "int64"]


def _genres(tables) -> dict[int, list[str]]:
    return dict(zip(tables.movies["item"], tables.movies["genres"], strict=True))


def _titles(tables) -> dict[int, str]:
    return dict(zip(tables.movies["item"], tables.movies["title"], strict=True))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_canonical_tables_read_back_as_written(layout, tmp_path):
    """What download writes (parquet) is what the later rules read, dtypes and lists too."""
    tables = read_tables(LAYOUTS[layout][0], layout)
    write_canonical(tables, tmp_path)
    again = read_canonical(tmp_path)
    _check_canonical(again)
    for name in ("ratings", "movies", "tags", "users"):
        if getattr(tables, name) is None:
            assert getattr(again, name) is None and not (tmp_path / f"{name}.parquet").exists()
        else:
            pd.testing.assert_frame_equal(getattr(again, name), getattr(tables, name))


def test_a_folder_without_canonical_tables_says_to_fetch_again():
    """resources/{dataset} of an older version held the raw files only."""
    with pytest.raises(DataError, match=r"ml-20m: no ratings.parquet .*--forcerun download"):
        read_canonical(LAYOUTS["csv"][0])


def test_every_dataset_layout_has_a_parser():
    assert {spec.layout for spec in DATASETS.values()} == set(PARSERS)


def test_ml1m_occupations_in_readme_order():
    assert len(ML1M_OCCUPATIONS) == 21
    assert ML1M_OCCUPATIONS[0] == "other" and ML1M_OCCUPATIONS[10] == "K-12 student"
    assert ML1M_OCCUPATIONS[20] == "writer"


def test_ml100k():
    tables = read_tables(FIXTURES / "ml-100k", "ml-100k")
    _check_canonical(tables)
    ratings = tables.ratings
    assert len(ratings) == 50
    assert ratings.iloc[0].tolist() == [1, 1, 1.0, 874965758]
    assert ratings.iloc[-1].tolist() == [6, 1682, 3.0, 874966000]  # 1682 is not in u.item
    assert ratings.groupby("user").size().to_dict() == {1: 7, 2: 7, 3: 7, 4: 7, 5: 7, 6: 8, 7: 7}
    assert ratings["rating"].sum() == 157.0
    assert set(ratings["rating"]) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert tables.movies["item"].tolist() == [1, 2, 4, 50, 98, 267, 711, 1300, 1373, 1582, 1681]
    assert 1582 not in set(ratings["item"])  # a movie without ratings
    genres = _genres(tables)
    assert genres[1] == ["Animation", "Children's", "Comedy"]
    assert genres[50] == ["Action", "Adventure", "Romance", "Sci-Fi", "War"]
    assert genres[267] == []  # only the "unknown" flag
    assert genres[1373] == ["Comedy"]  # "unknown" plus Comedy
    assert genres[1582] == ["Film-Noir"]
    titles = _titles(tables)
    assert titles[711] == "Misérables, Les (1995)"  # latin-1 in the file
    assert titles[1300] == "'Til There Was You (1997)"
    assert tables.tags.empty
    assert tables.users.to_dict("list") == {
        "user": [1, 2, 3, 4, 5, 6, 7],
        "gender": ["M", "F", "M", "M", "F", "M", "M"],
        "age": [24, 53, 23, 24, 33, 42, 57],
        "occupation": [
            "technician",
            "other",
            "writer",
            "technician",
            "other",
            "executive",
            "administrator",
        ],
    }
    assert str(tables.users["age"].dtype) == "int64"


def test_ml100k_genre_names_come_from_u_genre(tmp_path):
    folder = _copy("ml-100k", tmp_path)
    _replace_line(folder / "u.genre", 5, "Children|4")
    assert _genres(read_tables(folder, "ml-100k"))[1] == ["Animation", "Children", "Comedy"]
    (folder / "u.genre").unlink()
    assert _genres(read_tables(folder, "ml-100k"))[1] == ["Animation", "Children's", "Comedy"]


def test_ml1m():
    tables = read_tables(FIXTURES / "ml-1m", "ml-1m")
    _check_canonical(tables)
    ratings = tables.ratings
    assert len(ratings) == 50
    assert ratings.iloc[0].tolist() == [1, 1, 1.0, 978300760]
    assert ratings.iloc[-1].tolist() == [3, 9999, 4.0, 978302000]  # 9999 is not in movies.dat
    assert ratings.groupby("user").size().to_dict() == {1: 7, 2: 7, 3: 8, 4: 7, 5: 7, 6: 7, 7: 7}
    assert ratings["rating"].sum() == 158.0
    assert tables.movies["item"].tolist() == [1, 2, 3, 6, 11, 73, 260, 1176, 2019, 3132, 3952]
    assert 3132 not in set(ratings["item"])
    genres = _genres(tables)
    assert genres[1] == ["Animation", "Children's", "Comedy"]
    assert genres[260] == ["Action", "Adventure", "Fantasy", "Sci-Fi"]
    assert genres[1176] == ["Drama"]
    titles = _titles(tables)
    assert titles[260] == "Star Wars: Episode IV - A New Hope (1977)"
    assert titles[73] == "Misérables, Les (1995)"
    assert titles[1176] == "Double Vie de Véronique, La (1991)"
    assert tables.tags.empty
    assert tables.users.to_dict("list") == {
        "user": [1, 2, 3, 4, 5, 6, 7],
        "gender": ["F", "M", "M", "M", "M", "F", "M"],
        "age": [1, 56, 25, 45, 25, 50, 35],
        "occupation": [
            "K-12 student",
            "self-employed",
            "scientist",
            "executive/managerial",
            "writer",
            "homemaker",
            "other",
        ],
    }


def test_ml10m():
    tables = read_tables(LAYOUTS["ml-10m"][0], "ml-10m")
    _check_canonical(tables)
    ratings = tables.ratings
    assert len(ratings) == 50
    assert ratings.iloc[0].tolist() == [1, 1, 0.5, 838985046]
    assert ratings.iloc[-1].tolist() == [5, 99999, 3.5, 838990000]  # 99999: not in movies
    assert sorted(ratings["user"].unique()) == [1, 2, 3, 5, 8, 13, 21]
    assert ratings["rating"].sum() == 149.0
    assert set(ratings["rating"]) == {0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0}
    assert 26649 not in set(ratings["item"])
    assert len(tables.movies) == 11
    genres = _genres(tables)
    assert genres[1] == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    assert genres[8606] == []  # (no genres listed)
    titles = _titles(tables)
    assert titles[4973] == "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)"
    assert titles[53953] == "Лермонтов (1943)"
    assert titles[7789] == "11'09\"01 - September 11 (2002)"
    assert titles[260] == "Star Wars: Episode IV - A New Hope (a.k.a. Star Wars) (1977)"
    assert tables.tags.values.tolist() == [
        [1, 1, "pixar"],
        [1, 260, "sci-fi: classic"],
        [2, 4973, "Paris"],
        [2, 4973, "café"],
        [5, 73, "Oscar (Best Picture)"],
        [13, 8606, "beat generation"],
    ]
    assert tables.users is None


def test_csv():
    tables = read_tables(LAYOUTS["csv"][0], "csv")
    _check_canonical(tables)
    ratings = tables.ratings
    assert len(ratings) == 50
    assert ratings.iloc[0].tolist() == [1, 1, 0.5, 1112484580]
    assert ratings.iloc[-1].tolist() == [4, 200001, 2.5, 1112490000]  # 200001: not in movies
    assert sorted(ratings["user"].unique()) == [1, 2, 3, 4, 7, 11, 18]
    assert ratings["rating"].sum() == 148.0
    assert 122888 not in set(ratings["item"])
    assert len(tables.movies) == 11
    genres = _genres(tables)
    assert genres[11] == ["Comedy", "Drama", "Romance"]
    assert genres[114335] == genres[122888] == genres[176601] == []
    titles = _titles(tables)
    assert titles[11] == "American President, The (1995)"
    assert titles[32460] == '"Great Performances" Cats (1998)'
    assert titles[4973] == "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)"
    assert titles[176601] == "Black Mirror"
    assert tables.tags.values.tolist() == [
        [2, 1, "pixar"],
        [2, 260, "sci-fi"],
        [3, 4973, "quirky, romantic"],
        [4, 260, "Oscar (Best Picture)"],
        [7, 32460, "Andrew Lloyd Webber"],
        [18, 73, "Café des 2 Moulins"],
    ]
    assert tables.users is None


def test_dat_title_and_tag_may_contain_the_separator(tmp_path):
    folder = _copy("ml-10m", tmp_path)
    _replace_line(folder / "movies.dat", 2, "2::Jumanji:: The Game (1995)::Adventure|Children")
    _replace_line(folder / "tags.dat", 1, "1::1::a::b::1188263867")
    tables = read_tables(folder, "ml-10m")
    assert _titles(tables)[2] == "Jumanji:: The Game (1995)"
    assert _genres(tables)[2] == ["Adventure", "Children"]
    assert tables.tags["tag"].iloc[0] == "a::b"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_pair_rated_again_keeps_its_latest_rating(layout, tmp_path):
    """Rated again later, rated at the same time on a later line, rated earlier: the pair
    keeps the second (the latest, the later of the two lines), with a warning."""
    folder = _copy(layout, tmp_path)
    _, name, sep, _ = LAYOUTS[layout]
    lines = (folder / name).read_text().splitlines()
    user, item, _, time = lines[layout == "csv"].split(sep)
    again = [(2, int(time) + 10), (4, int(time) + 10), (5, int(time) - 10)]
    lines += [sep.join([user, item, str(stars), str(when)]) for stars, when in again]
    (folder / name).write_text("\n".join(lines) + "\n")
    warnings: list[str] = []
    sink = logger.add(warnings.append, level="WARNING", format="{message}")
    try:
        ratings = read_tables(folder, layout).ratings
    finally:
        logger.remove(sink)
    assert len(ratings) == len(lines) - (layout == "csv") - 3
    assert not ratings.duplicated(["user", "item"]).any()
    pair = ratings[(ratings["user"] == int(user)) & (ratings["item"] == int(item))]
    assert pair[["rating", "timestamp"]].to_numpy().tolist() == [[4.0, int(time) + 10]]
    assert [w.strip() for w in warnings if w.startswith(f"{folder / name}:")] == [
        f"{folder / name}: 3 duplicate ratings of a (user, movie) pair dropped; each pair "
        "keeps its latest rating"
    ]


def test_unknown_layout():
    with pytest.raises(DataError, match="unknown layout 'ml-5m'"):
        read_tables(FIXTURES, "ml-5m")


# A bad line 5 of the ratings file: the fields, changed as each case says.
BAD_RATINGS = {
    "extra field": (lambda f: [*f, "7"], "expected 4"),
    "missing field": (lambda f: f[:3], "expected 4"),
    "blank line": (lambda f: [""], "expected 4"),
    "user not a number": (lambda f: ["x1", *f[1:]], "not a number: 'x1'"),
    "item not a number": (lambda f: [f[0], "", *f[2:]], "not a number: ''"),
    "rating not a number": (lambda f: [*f[:2], "good", f[3]], "not a number: 'good'"),
    "timestamp not a number": (lambda f: [*f[:3], "yesterday"], "not a number: 'yesterday'"),
    "user not whole": (lambda f: ["1.5", *f[1:]], "is not a whole number: 1.5"),
    "timestamp not whole": (lambda f: [*f[:3], "978300760.5"], "not a whole number: 978300760.5"),
    "user beyond int64": (
        lambda f: ["18446744073709551615", *f[1:]],
        "is out of the int64 range: 18446744073709551615",
    ),
    "timestamp beyond int64": (
        lambda f: [*f[:3], "99999999999999999999999"],
        "is out of the int64 range: 99999999999999999999999",
    ),
    "user negative": (lambda f: ["-3", *f[1:]], "is negative: -3"),
    "item negative": (lambda f: [f[0], "-1", *f[2:]], "is negative: -1"),
    "rating above 5": (lambda f: [*f[:2], "7", f[3]], "rating 7.0 is outside the 0.5-5"),
    "rating below 0.5": (lambda f: [*f[:2], "0", f[3]], "rating 0.0 is outside the 0.5-5"),
    # one such time made movie_age's standard deviation 2.3e9 years
    "timestamp -2^63": (
        lambda f: [*f[:3], str(-(2**63))],
        "-9223372036854775808 is outside 1970-2099 (Unix time in seconds)",
    ),
    "timestamp in 2100": (lambda f: [*f[:3], "4102444800"], "4102444800 is outside 1970-2099"),
}


@pytest.mark.parametrize("case", BAD_RATINGS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_bad_ratings_line_is_named(layout, case, tmp_path):
    folder = _copy(layout, tmp_path)
    _, ratings_file, sep, _ = LAYOUTS[layout]
    change, expected = BAD_RATINGS[case]
    fields = (folder / ratings_file).read_text().splitlines()[4].split(sep)
    _replace_line(folder / ratings_file, 5, sep.join(change(fields)))
    message = _error(layout, folder)
    assert f"{ratings_file}:5: " in message
    assert expected in message


@pytest.mark.parametrize("layout", ["ml-1m", "ml-10m"])
def test_a_tab_in_a_double_colon_ratings_line_is_named(layout, tmp_path):
    """The `::` files are read with `::` turned into tabs: a tab of its own is an error."""
    folder = _copy(layout, tmp_path)
    _, ratings_file, sep, _ = LAYOUTS[layout]
    fields = (folder / ratings_file).read_text().splitlines()[4].split(sep)
    _replace_line(folder / ratings_file, 5, sep.join([*fields[:2], fields[2] + "\t", fields[3]]))
    assert f"{ratings_file}:5: a tab inside a line" in _error(layout, folder)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_empty_ratings_file(layout, tmp_path):
    folder = _copy(layout, tmp_path)
    ratings_file = LAYOUTS[layout][1]
    (folder / ratings_file).write_bytes(b"")
    message = _error(layout, folder)
    assert ratings_file in message and "empty" in message


def test_csv_ratings_with_only_a_header(tmp_path):
    folder = _copy("csv", tmp_path)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    assert "ratings.csv: no ratings" in _error("csv", folder)


@pytest.mark.parametrize(
    "layout, name",
    [(layout, name) for layout in LAYOUTS for name in DATASETS[LAYOUTS[layout][3]].files],
)
def test_missing_required_file(layout, name, tmp_path):
    folder = _copy(layout, tmp_path)
    (folder / name).unlink()
    message = _error(layout, folder)
    assert f"{name}: missing file" in message


@pytest.mark.parametrize("make", [os.mkfifo, Path.mkdir])
def test_a_dataset_file_that_is_no_regular_file_is_named(make, tmp_path):
    folder = _copy("csv", tmp_path)
    (folder / "tags.csv").unlink()
    make(folder / "tags.csv")
    message = _error("csv", folder)
    assert message.endswith("tags.csv: not a regular file (a folder, a FIFO, a device?)")


# Bad lines in the other files: (layout, file, line number, new line, expected message part).
BAD_LINES = [
    ("ml-100k", "u.item", 3, "4|Get Shorty (1995)|01-Jan-1995||url|0|1", "expected 24 fields"),
    ("ml-100k", "u.item", 2, "2|GoldenEye (1995)||||" + "|".join("2" * 19), "flag unknown '2'"),
    ("ml-100k", "u.item", 4, "x50|Star Wars (1977)||||" + "|".join("0" * 19), "'x50'"),
    ("ml-100k", "u.user", 2, "2|fifty|F|other|94043", "age is not a number: 'fifty'"),
    ("ml-100k", "u.user", 3, "3|23|X|writer|32067", "gender 'X' is not one of M, F"),
    ("ml-1m", "movies.dat", 3, "3::Grumpier Old Men (1995)", "expected 3 fields"),
    ("ml-1m", "users.dat", 4, "4::M::45::21::02460", "Occupation '21' is not one of 0, 1"),
    ("ml-1m", "users.dat", 2, "2::M::57::16::70072", "Age '57' is not one of 1, 18"),
    ("ml-1m", "users.dat", 6, "6::F::50::9", "expected 5 fields"),
    ("ml-10m", "tags.dat", 2, "1::260::sci-fi", "expected 4 fields"),
    ("ml-10m", "tags.dat", 3, "two::4973::Paris::1162160236", "UserID is not a number"),
    ("ml-10m", "movies.dat", 4, b"73::Mis\xe9rables, Les (1995)::Drama", "not valid utf-8"),
    ("csv", "movies.csv", 3, "11,American President The (1995)", "expected 3 comma-separated"),
    ("csv", "tags.csv", 4, "3,4973,quirky,romantic,1445715054", "expected 4 comma-separated"),
    ("csv", "tags.csv", 2, "2,one,pixar,1445714994", "movieId is not a number: 'one'"),
    ("csv", "movies.csv", 4, b'73,"Mis\xe9rables, Les (1995)",Drama|War', "not valid utf-8"),
    # a quote opened and never closed: its field runs on over the following lines
    ("csv", "tags.csv", 2, '2,1,"pixar,1445714994', "a quote opened on this line"),
    ("csv", "movies.csv", 3, '11,"American President, The (1995),Comedy', "quote opened"),
    ("csv", "ratings.csv", 3, '1,"11,2.0,1112484587', "a quote opened on this line"),
    ("csv", "movies.csv", 12, '176601,"Black Mirror,(no genres listed)', "a quote opened on"),
    # a movie id listed twice
    (
        "csv",
        "movies.csv",
        4,
        "1,Toy Story again (1995),Comedy",
        "movie 1 is listed again (first on line 2)",
    ),
    ("ml-1m", "movies.dat", 3, "1::Toy Story again (1995)::Comedy", "movie 1 is listed again"),
    ("ml-100k", "u.item", 3, "1|Toy Story again (1995)||||" + "|".join("0" * 19), "movie 1 is "),
    ("ml-10m", "tags.dat", 2, "-15::4973::Paris::1162160236", "UserID is negative: '-15'"),
]


@pytest.mark.parametrize("layout, name, number, line, expected", BAD_LINES)
def test_bad_line_in_other_files_is_named(layout, name, number, line, expected, tmp_path):
    folder = _copy(layout, tmp_path)
    encoding = "utf-8" if layout in ("ml-10m", "csv") else "latin-1"
    _replace_line(folder / name, number, line, encoding)
    message = _error(layout, folder)
    assert f"{name}:{number}: " in message
    assert expected in message


HUGE = 10_000_000  # characters of one field


@pytest.mark.parametrize(
    ("layout", "name", "line", "value", "expected"),
    [
        ("ml-10m", "ratings.dat", "1::{}::4.0::838983525", "x" * HUGE, "MovieID is not a number"),
        ("ml-1m", "users.dat", "2::{}::56::16::70072", "x" * HUGE, "Gender"),
        ("csv", "tags.csv", "2,{},pixar,1445714994", "1.5" + "0" * HUGE, "movieId is not a whole"),
    ],
)
def test_a_huge_value_is_quoted_by_its_start_and_length(
    layout, name, line, value, expected, tmp_path
):
    folder = _copy(layout, tmp_path)
    _replace_line(folder / name, 2, line.format(value))
    message = _error(layout, folder)
    assert f"{name}:2: {expected}" in message
    assert f" {value[:80]!r}… ({len(value):,} characters)" in message and len(message) < 300


def test_a_quoted_line_break_is_part_of_its_field(tmp_path):
    """A title may span lines inside its quotes (valid CSV); the lines of later rows are
    still named right."""
    folder = _copy("csv", tmp_path)
    _replace_line(folder / "movies.csv", 3, '11,"American President,\nThe (1995)",Comedy|Drama')
    tables = read_tables(folder, "csv")
    assert _titles(tables)[11] == "American President,\nThe (1995)"
    assert len(tables.movies) == 11 and _genres(tables)[73] == ["Drama", "War"]
    _replace_line(folder / "movies.csv", 6, "x5,Father of the Bride Part II (1995),Comedy")
    assert "movies.csv:6: movieId is not a number: 'x5'" in _error("csv", folder)


def test_rated_movies_missing_from_the_movies_file_are_a_warning(tmp_path):
    folder = _copy("csv", tmp_path)
    lines = (folder / "movies.csv").read_text().splitlines(keepends=True)
    (folder / "movies.csv").write_text(
        "".join(line for line in lines if not line.startswith("11,"))
    )
    warnings: list[str] = []
    sink = logger.add(warnings.append, level="WARNING", format="{message}")
    try:
        tables = read_tables(folder, "csv")
    finally:
        logger.remove(sink)
    assert 11 in set(tables.ratings["item"]) and 11 not in set(tables.movies["item"])
    assert [w.strip() for w in warnings] == [
        f"{folder / 'movies.csv'}: rated movies not in it: 2 (ids 11, 200001); they get no title "
        "or genres"
    ]


def test_an_unclosed_quote_in_a_full_size_ratings_file_is_named(tmp_path):
    """In the embedded ratings.csv (100,836 lines) the open field outgrows the csv module's
    field limit before the file ends: the error still names the line the quote opens on."""
    embedded = ROOT / "resources" / "embedded" / "ml-latest-small"
    folder = shutil.copytree(embedded, tmp_path / "ml-latest-small")
    _replace_line(folder / "ratings.csv", 11, '1,"50,4.0,964982931')
    message = _error("csv", folder)
    assert "ratings.csv:11: " in message and "quote" in message


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_id_written_in_exponent_form_is_refused(tmp_path, layout):
    """`1e3` was read as user 1000 (and `2.0e1` as movie 20), in every layout."""
    folder = _copy(layout, tmp_path)
    _, name, sep, _ = LAYOUTS[layout]
    fields = (folder / name).read_text(encoding="latin-1").splitlines()[4].split(sep)
    _replace_line(folder / name, 5, sep.join(["1e3", *fields[1:]]))
    user = {"csv": "userId", "ml-100k": "user id"}.get(layout, "UserID")
    assert _error(layout, folder) == (
        f"{folder / name}:5: {user} is not written as a whole number: '1e3'"
    )
    _replace_line(folder / name, 5, sep.join([fields[0], "2.0e1", *fields[2:]]))
    assert ":5: " in _error(layout, folder) and "'2.0e1'" in _error(layout, folder)


def test_blank_lines_at_the_end_of_a_csv_file_are_no_rows(tmp_path):
    folder = _copy("csv", tmp_path)
    expected = read_tables(folder, "csv")
    with open(folder / "ratings.csv", "a") as file:
        file.write("\n\n")
    tables = read_tables(folder, "csv")
    pd.testing.assert_frame_equal(tables.ratings, expected.ratings)
    _replace_line(folder / "ratings.csv", 4, "")  # a blank line before the last is an error
    assert _error("csv", folder).endswith(
        "ratings.csv:4: expected 4 comma-separated fields, found 0 (a blank line)"
    )


@pytest.mark.parametrize("layout", ["csv", "ml-1m"])
def test_empty_genre_names_are_dropped_with_a_warning(layout, tmp_path):
    """100,000 '|' made 100,001 empty-named genres of one movie, and '' a genre."""
    folder = _copy(layout, tmp_path)
    name, sep = ("movies.csv", ",") if layout == "csv" else ("movies.dat", "::")
    lines = (folder / name).read_text(encoding="latin-1").splitlines()
    number = 2 if layout == "csv" else 1
    head, _ = lines[number - 1].rsplit(sep, 1)
    item = int(head.split(sep)[0])
    _replace_line(folder / name, number, f"{head}{sep}|Action||Comedy{'|' * 100_000}", "latin-1")
    warnings: list[str] = []
    sink = logger.add(warnings.append, level="WARNING", format="{message}")
    try:
        tables = read_tables(folder, layout)
    finally:
        logger.remove(sink)
    assert _genres(tables)[item] == ["Action", "Comedy"]
    assert "" not in {g for names in tables.movies["genres"] for g in names}
    assert (
        f"{folder / name}: 100002 empty genre names dropped (a '|' doubled or at either "
        "end)" in [w.strip() for w in warnings]
    )
