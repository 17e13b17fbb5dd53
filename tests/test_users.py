"""User demographics: real where the archive has them, seeded synthetic ones, or none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepfm_rec.data.encoding import encode
from deepfm_rec.data.errors import DataError
from deepfm_rec.data.layouts import read_tables
from deepfm_rec.data.users import AGES, COLUMNS, GENDERS, OCCUPATIONS, build_users, synthesize
from workflow_helpers import FIXTURES


def test_synthetic_users_are_seeded_and_follow_ml1m_marginals():
    users = np.arange(1, 20001)
    a, b = synthesize(users[::-1], seed=1), synthesize(users, seed=1)
    pd.testing.assert_frame_equal(a, b)  # input order does not matter
    assert not a["gender"].equals(synthesize(users, seed=2)["gender"])
    assert a["gender"].value_counts(normalize=True)["M"] == pytest.approx(
        GENDERS["M"] / sum(GENDERS.values()), abs=0.02
    )
    assert set(a["age"]) == set(AGES) and set(a["occupation"]) == set(OCCUPATIONS)
    assert list(a.columns) == COLUMNS and set(a["origin"]) == {"synthetic"}


def test_modes_with_and_without_real_demographics():
    tables = read_tables(FIXTURES / "ml-1m", "ml-1m")
    rated = tables.ratings["user"].unique()
    real = build_users(rated, tables.users, "auto", seed=0)
    assert set(real["origin"]) == {"real"} and set(real["user"]) == set(rated)
    expected = tables.users.set_index("user").loc[real["user"], "gender"].to_numpy()
    assert (real["gender"].to_numpy() == expected).all()
    assert set(build_users(rated, tables.users, "synthetic", 0)["origin"]) == {"synthetic"}
    assert build_users(rated, tables.users, "none", 0).empty
    assert set(build_users(rated, None, "auto", 0)["origin"]) == {"synthetic"}
    with pytest.raises(DataError, match="'users': 'real' asked, but this dataset has no"):
        build_users(rated, None, "real", 0)
    with pytest.raises(DataError, match="'users': 'fake' is not one of"):
        build_users(rated, None, "fake", 0)


def test_no_users_means_no_demographic_fields(tmp_path):
    tables = read_tables(FIXTURES / "ml-20m", "csv")
    users = build_users(tables.ratings["user"].unique(), None, "none", seed=0)
    meta = encode(
        tables,
        users,
        tmp_path / "enc",
        seed=0,
        valid_fraction=0.1,
        test_fraction=0.1,
        provenance={"dataset": "ml-20m"},
    )
    assert not {"gender", "occupation", "age"} & {f["name"] for f in meta["fields"]}
    assert [f["owner"] for f in meta["fields"]].count("user") == 2  # user and history
    assert meta["users_origin"] == []
