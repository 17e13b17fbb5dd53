"""The encoded format on the real ml-latest-small: invariants and round trips to the tables."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml

from deepfm_rec.data.encoding import SPLITS, _check, encode, open_encoded, split_rows
from deepfm_rec.data.errors import DataError
from deepfm_rec.data.fields import FIELDS
from deepfm_rec.data.layouts import Tables
from deepfm_rec.data.users import build_users
from workflow_helpers import ROOT


def encode_ratings(tables_small, ratings, out, *, seed, users="auto", **settings):
    """`ratings` (a subset or change of the embedded ones) encoded into `out` with its
    movies and tags, 10% valid and 10% test unless `settings` say otherwise."""
    tables = Tables(ratings=ratings, movies=tables_small.movies, tags=tables_small.tags)
    settings = {"valid_fraction": 0.1, "test_fraction": 0.1, **settings}
    people = build_users(ratings["user"].unique(), None, users, seed=seed)
    encode(tables, people, out, seed=seed, provenance={}, **settings)


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
    assert [(f["name"], f["owner"]) for f in meta["fields"]] == [
        ("user", "user"),
        ("item", "item"),
        ("gender", "user"),
        ("occupation", "user"),
        ("age", "user"),
        ("genres", "item"),
        ("tags", "pair"),
        ("history", "user"),
        ("raters", "item"),
        ("release_year", "item"),
        ("rating_year", "pair"),
        ("movie_age", "pair"),
    ]
    assert [(f["name"], f["kind"], f["owner"]) for f in meta["fields"]] == [
        (name, field.kind, field.owner) for name, field in FIELDS.items()
    ]
    assert meta["users_origin"] == ["synthetic"] and meta["seed"] == 7
    assert (meta["split_method"], meta["implicit"]) == ("random", "train")


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


def bags_of(encoded, field: str) -> list[list[int]]:
    """Every bag of a multi-valued field, by bag index, from its values and offsets."""
    values, offsets = encoded.arrays[f"{field}.values"], encoded.arrays[f"{field}.offsets"]
    return [values[offsets[b] : offsets[b + 1]].tolist() for b in range(len(offsets) - 1)]


def test_implicit_bags_are_the_train_pairs(encoded_small):
    """history (one bag per user code) is exactly the user's train movies, raters (one
    per item code) the movie's train users, computed here with pandas; a train row leaves
    its own pair out, a held-out row has nothing to leave out."""
    a = encoded_small.arrays
    rows = pd.DataFrame({name: np.asarray(a[name]) for name in ("user", "item", "split")})
    train = rows[rows["split"] == SPLITS["train"]]
    for field, owner, other in (("history", "user", "item"), ("raters", "item", "user")):
        expected = train.groupby(owner)[other].apply(lambda s: sorted(set(s)))
        bags = bags_of(encoded_small, field)
        assert len(bags) == encoded_small.size(owner) and bags[0] == []
        assert {code: bags[code] for code in expected.index} == expected.to_dict()
        assert all(bags[c] == [] for c in set(range(len(bags))) - set(expected.index))
        np.testing.assert_array_equal(a[f"{field}.bag"], a[owner])
        own = np.where(rows["split"] == SPLITS["train"], rows[other], 0)
        np.testing.assert_array_equal(a[f"{field}.leave"], own)


def test_held_out_rows_change_no_bag(tables_small, encoded_small, tmp_path):
    """With the default convention (train), what the valid and test rows hold does not
    reach any bag: moving every held-out rating to another movie changes no bag."""
    ratings = tables_small.ratings.copy()
    held_out = np.asarray(encoded_small.arrays["split"]) != SPLITS["train"]
    movies = ratings["item"].unique()
    ratings.loc[held_out, "item"] = np.random.default_rng(0).choice(movies, held_out.sum())
    encode_ratings(tables_small, ratings, tmp_path / "moved", seed=7)
    moved = open_encoded(tmp_path / "moved")
    np.testing.assert_array_equal(moved.arrays["split"], encoded_small.arrays["split"])
    for field in ("history", "raters"):
        assert bags_of(moved, field) == bags_of(encoded_small, field), field


def test_the_observed_convention_holds_every_rated_pair(tables_small, tmp_path):
    ratings = tables_small.ratings[tables_small.ratings["user"] <= 30].reset_index(drop=True)
    out = tmp_path / "observed"
    encode_ratings(tables_small, ratings, out, seed=1, implicit="observed")
    encoded = open_encoded(out)
    a = encoded.arrays
    coded = (np.asarray(a["user"]) > 0) & (np.asarray(a["item"]) > 0)
    pairs = pd.DataFrame({"user": a["user"][coded], "item": a["item"][coded]})
    expected = pairs.groupby("user")["item"].apply(lambda s: sorted(set(s))).to_dict()
    bags = bags_of(encoded, "history")
    assert {code: bags[code] for code in expected} == expected
    assert not np.asarray(a["history.leave"]).any()  # every row's pair is in its bag
    assert encoded.meta["implicit"] == "observed"


def test_time_fields_match_the_titles_and_timestamps(encoded_small, tables_small):
    a, ratings = encoded_small.arrays, tables_small.ratings
    fields = {f["name"]: f for f in encoded_small.meta["fields"]}
    titles = tables_small.movies.set_index("item")["title"]
    # "Heat (1995)"; a series' "(2006–2007)" gives its first year
    year = titles.str.extract(r"\((\d{4})(?:[-–]\d{4})?\)\s*$")[0].astype(float)
    release = year.reindex(ratings["item"]).to_numpy()
    train = np.asarray(a["split"]) == SPLITS["train"]
    vocabulary = np.unique(release[train & ~np.isnan(release)])
    codes = np.asarray(a["release_year"])
    known = codes > 0
    np.testing.assert_array_equal(vocabulary[codes[known] - 1], release[known])
    # unknown: no year in the title, or a year no train row's movie has
    assert not np.isin(release[~known], vocabulary).any()
    rated = pd.to_datetime(ratings["timestamp"], unit="s")
    rating_year = np.unique(rated.dt.year.to_numpy()[train])
    np.testing.assert_array_equal(rating_year[a["rating_year"] - 1], rated.dt.year.to_numpy())
    # the movie's age when rated, in years, standardised with the train rows' mean and std
    age = (ratings["timestamp"] / (365.25 * 24 * 3600) + 1970 - (release + 0.5)).to_numpy()
    m = fields["movie_age"]
    np.testing.assert_allclose(
        a["movie_age"][known], ((age - m["mean"]) / m["std"])[known], rtol=1e-4, atol=1e-4
    )
    assert m["mean"] == pytest.approx(np.nanmean(age[train & known]))


def test_the_temporal_split_holds_out_each_users_latest_ratings(tables_small, tmp_path):
    ratings = tables_small.ratings
    out = tmp_path / "temporal"
    encode_ratings(tables_small, ratings, out, seed=1, split_method="temporal")
    split = np.asarray(open_encoded(out).arrays["split"])
    frame = ratings.assign(split=split)
    times = frame.groupby(["user", "split"])["timestamp"].agg(["min", "max"]).unstack()
    assert (times[("max", SPLITS["train"])] <= times[("min", SPLITS["valid"])]).all()
    assert (times[("max", SPLITS["valid"])] <= times[("min", SPLITS["test"])]).all()
    counts = frame.groupby("user").size()
    tests = frame[frame["split"] == SPLITS["test"]].groupby("user").size()
    np.testing.assert_array_equal(tests.reindex(counts.index), np.round(counts * 0.1))


def test_genre_bags_match_movies(encoded_small, tables_small):
    a, ratings = encoded_small.arrays, tables_small.ratings
    vocabulary = next(f for f in encoded_small.meta["fields"] if f["name"] == "genres")[
        "vocabulary"
    ]
    genres = tables_small.movies.set_index("item")["genres"]
    bags = bags_of(encoded_small, "genres")
    for item, b in zip(ratings["item"], a["genres.bag"], strict=True):  # every row
        assert sorted(vocabulary[c - 1] for c in bags[b]) == sorted(genres[item])
    no_genres = genres[genres.map(len) == 0].index
    rows = np.flatnonzero(ratings["item"].isin(no_genres).to_numpy())
    assert len(rows) and all(bags[a["genres.bag"][r]] == [] for r in rows)


def test_tag_bags_hold_the_pairs_tags(encoded_small, tables_small):
    a, ratings, tags = encoded_small.arrays, tables_small.ratings, tables_small.tags
    tagged = a["tags.bag"] > 0
    pairs = set(zip(tags["user"], tags["item"], strict=True))
    row_pairs = list(zip(ratings["user"], ratings["item"], strict=True))
    assert all(row_pairs[r] in pairs for r in np.flatnonzero(tagged))
    # every row has exactly its pair's distinct (lower-cased) tags of the train vocabulary
    tags = tags.assign(tag=tags["tag"].str.strip().str.lower())
    train = np.asarray(a["split"]) == SPLITS["train"]
    tag_of_pair = tags.groupby(["user", "item"])["tag"].apply(set).to_dict()
    vocabulary = sorted(
        set().union(*(tag_of_pair.get(row_pairs[r], set()) for r in np.flatnonzero(train)))
    )
    bags = bags_of(encoded_small, "tags")
    for pair, b in zip(row_pairs, a["tags.bag"], strict=True):
        expected = sorted(
            vocabulary.index(t) + 1 for t in tag_of_pair.get(pair, ()) if t in vocabulary
        )
        assert bags[b] == expected, pair


def test_a_tag_is_keyed_by_its_user_and_movie_whatever_their_ids(tmp_path):
    """user * 2^32 + movie made (1, 2^32 + 5) the key of (2, 5): its tag went to user 1."""
    big = 2**32 + 5
    ratings = pd.DataFrame(
        {
            "user": [1] * 10 + [2] * 10,
            "item": [big, *range(11, 20), 5, *range(21, 30)],
            "rating": np.float32(4.0),
            "timestamp": [*range(10), *range(10)],  # the first rows are train (temporal)
        }
    )
    movies = pd.DataFrame({"item": sorted({*ratings["item"]}), "title": "A movie (1999)"})
    tags = pd.DataFrame({"user": [2], "item": [5], "tag": ["funny"]})
    tables = Tables(ratings, movies.assign(genres=[[]] * len(movies)), tags)
    users = build_users(ratings["user"].unique(), None, "none", seed=0)
    encode(
        tables,
        users,
        tmp_path / "encoded",
        seed=0,
        valid_fraction=0.1,
        test_fraction=0.1,
        provenance={},
        split_method="temporal",
    )
    encoded = open_encoded(tmp_path / "encoded")
    assert np.flatnonzero(encoded.arrays["tags.bag"]).tolist() == [10]  # the row of (2, 5)
    assert len(bags_of(encoded, "tags")[encoded.arrays["tags.bag"][10]]) == 1


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
    with pytest.raises(DataError, match=rf"config key 'split' .* leaves the {empty} split empty"):
        encode_ratings(
            tables_small,
            ratings,
            tmp_path / "encoded",
            users="synthetic",
            seed=0,
            valid_fraction=valid,
            test_fraction=test,
        )
    assert list(tmp_path.iterdir()) == []


def test_a_broken_invariant_is_a_real_error_not_an_assert(encoded_small):
    """The format's checks raise (python -O removes assert statements)."""
    arrays = {name: np.array(array) for name, array in encoded_small.arrays.items()}
    arrays["genres.offsets"][-1] += 1  # offsets[-1] no longer len(values)
    with pytest.raises(RuntimeError, match=r"genres: offsets\[-1\] == len\(values\)"):
        _check(arrays, encoded_small.meta["fields"], encoded_small.meta["rows"])


def test_a_bag_limit_keeps_a_seeded_sample_and_leaves_out_only_what_it_kept(
    tables_small, encoded_small, tmp_path
):
    users = build_users(tables_small.ratings["user"].unique(), None, "auto", seed=7)
    capped = []
    for name in ("a", "b"):
        encode(
            tables_small,
            users,
            tmp_path / name,
            seed=7,
            valid_fraction=0.1,
            test_fraction=0.1,
            provenance={},
            bag_limit=50,
        )
        capped.append(open_encoded(tmp_path / name))
    assert capped[0].meta["bag_limit"] == 50 and encoded_small.meta["bag_limit"] is None
    a = capped[0].arrays
    for field, other in (("history", "item"), ("raters", "user")):
        full, kept = bags_of(encoded_small, field), bags_of(capped[0], field)
        assert kept == bags_of(capped[1], field)  # seeded: the same sample twice
        assert all(
            len(k) == min(len(f), 50) and set(k) <= set(f) for f, k in zip(full, kept, strict=True)
        )
        assert any(len(f) > 50 for f in full)  # the cap binds on this data
        # a train row leaves its own pair out only where its bag kept it
        leave, bag = np.asarray(a[f"{field}.leave"]), np.asarray(a[f"{field}.bag"])
        train = np.asarray(a["split"]) == SPLITS["train"]
        in_bag = np.array([v in kept[b] for v, b in zip(a[other], bag, strict=True)])
        np.testing.assert_array_equal(leave > 0, train & in_bag & (bag > 0))


def test_a_builder_that_builds_an_unregistered_field_is_a_real_error(
    tables_small, tmp_path, monkeypatch
):
    """The registry drives encode: a family's builder must build the fields registered to
    it (here occupation, taken out of the registry, is still built by the demographics')."""
    registry = {name: field for name, field in FIELDS.items() if name != "occupation"}
    monkeypatch.setattr("deepfm_rec.data.fields.FIELDS", registry)
    ratings = tables_small.ratings[tables_small.ratings["user"] <= 30].reset_index(drop=True)
    built = r"_demographics built fields \['gender', 'occupation', 'age'\]"
    with pytest.raises(RuntimeError, match=rf"{built}, the registry gives it \['gender', 'age'\]"):
        encode_ratings(tables_small, ratings, tmp_path / "encoded", users="synthetic", seed=0)
    assert list(tmp_path.iterdir()) == []


def _field_enums(node):
    """The item enum of every `fields` key in the config schema, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "fields" and "items" in value:
                yield value["items"]["enum"]
            yield from _field_enums(value)


def test_the_schema_and_the_readme_list_every_registry_field():
    """Adding a field to FIELDS means adding it to the schema's `fields` enum and to the
    README's table of the fields, with its owner and kind."""
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    enums = list(_field_enums(schema))
    assert enums and all(enum == list(FIELDS) for enum in enums)
    section = (ROOT / "README.md").read_text().split("### The fields\n", 1)[1].split("\n#")[0]
    owner_word = {"user": "user", "item": "movie", "pair": "pair"}
    kind_word = {"categorical": "categorical", "dense": "dense", "multi": "bag"}
    listed = []
    for row in (line for line in section.splitlines() if line.startswith("| `")):
        names_cell, owners, kinds = [cell.strip() for cell in row.strip("|").split("|")][:3]
        names = re.findall(r"`(\w+)`", names_cell)
        assert set(names) <= set(FIELDS), row
        assert set(owners.split(", ")) == {owner_word[FIELDS[n].owner] for n in names}, row
        assert set(kinds.split(", ")) == {kind_word[FIELDS[n].kind] for n in names}, row
        listed += names
    assert sorted(listed) == sorted(FIELDS)
