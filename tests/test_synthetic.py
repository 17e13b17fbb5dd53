"""The synthetic dataset: parses as ml-10m, is seeded, and knows its noise floor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepfm_rec.data.errors import DataError
from deepfm_rec.data.layouts import read_tables
from deepfm_rec.data.synthetic import (
    GENRES,
    _activity,
    _expected,
    default_sizes,
    generate,
)

N_RATINGS = 20_000
MODEL = {"noise": 0.8, "embed_dim": 8}  # the generator's noise (stars) and truth's dimension
FILES = ("ratings.dat", "movies.dat", "tags.dat", "expected.npy", "truth.json")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic") / "ml-10M100K"
    truth = generate(folder, n_ratings=N_RATINGS, n_users=None, n_items=None, seed=5, **MODEL)
    return folder, truth, read_tables(folder, "ml-10m")


def test_parses_as_ml10m_with_the_asked_sizes(synthetic):
    folder, truth, tables = synthetic
    n_users, n_items = default_sizes(N_RATINGS)
    assert json.loads((folder / "truth.json").read_text()) == truth
    assert (truth["seed"], truth["n_ratings"]) == (5, N_RATINGS)
    assert (truth["n_users"], truth["n_items"]) == (n_users, n_items)
    ratings = tables.ratings
    assert len(ratings) == N_RATINGS
    assert ratings["user"].between(1, n_users).all() and ratings["item"].between(1, n_items).all()
    assert not ratings.duplicated(["user", "item"]).any()
    assert ratings.equals(ratings.sort_values(["user", "item"]))
    assert tables.movies["item"].tolist() == list(range(1, n_items + 1))
    assert all(1 <= len(g) <= 3 and set(g) <= set(GENRES) for g in tables.movies["genres"])
    assert tables.users is None
    # tags name a genre of the movie, on rated pairs
    tags = tables.tags.merge(tables.movies, on="item")
    assert 0 < len(tags) < 0.02 * N_RATINGS
    assert all(
        t in [g.lower() for g in gs] for t, gs in zip(tags["tag"], tags["genres"], strict=True)
    )
    rated = set(zip(ratings["user"], ratings["item"], strict=True))
    assert set(zip(tables.tags["user"], tables.tags["item"], strict=True)) <= rated


def test_activity_is_skewed_like_movielens(synthetic):
    ratings = synthetic[2].ratings
    per_user = ratings.groupby("user").size()
    per_item = ratings.groupby("item").size()
    assert per_user.max() > 4 * per_user.median()  # a uniform draw gives under 2
    assert per_item.max() > 5 * per_item.median()


def test_ratings_are_half_stars_in_range(synthetic):
    rating = synthetic[2].ratings["rating"].to_numpy()
    assert set(np.unique(rating)) <= set(np.arange(1, 11) / 2)
    assert rating.min() == 0.5 and rating.max() == 5.0
    assert 3.0 < rating.mean() < 4.0 and 0.8 < rating.std() < 1.3


def test_same_seed_same_files_other_seed_other_files(synthetic, tmp_path):
    folder, _, _ = synthetic
    generate(tmp_path / "same", n_ratings=N_RATINGS, n_users=None, n_items=None, seed=5, **MODEL)
    for name in FILES:
        assert (tmp_path / "same" / name).read_bytes() == (folder / name).read_bytes(), name
    generate(tmp_path / "other", n_ratings=N_RATINGS, n_users=None, n_items=None, seed=6, **MODEL)
    for name in FILES:
        assert (tmp_path / "other" / name).read_bytes() != (folder / name).read_bytes(), name


def test_expected_rating_matches_monte_carlo():
    x = np.array([0.0, 1.1, 2.6, 3.5, 4.2, 5.3, 7.0])
    eps = np.random.default_rng(0).normal(0, 0.8, (200_000, 1))
    simulated = (np.round(2 * np.clip(x + eps, 0.5, 5)) / 2).mean(axis=0)
    np.testing.assert_allclose(_expected(x, 0.8), simulated, atol=0.006)


def test_noise_floor(synthetic):
    folder, truth, tables = synthetic
    rating = tables.ratings["rating"].to_numpy(np.float64)
    expected = np.load(folder / "expected.npy").astype(np.float64)

    def rmse(prediction):
        return float(np.sqrt(np.mean((rating - prediction) ** 2)))

    # the true expectations reach the recorded floor, and nothing simple beats them
    assert rmse(expected) == pytest.approx(truth["bayes_rmse"], abs=1e-4)
    for worse in (expected + 0.05, expected - 0.05, 0.9 * expected + 0.1 * rating.mean()):
        assert rmse(worse) > truth["bayes_rmse"]
    # E[rating | expected] = expected: each bin's mean residual is within 4 standard errors
    bins = np.digitize(expected, np.arange(1.0, 5.0, 0.25))
    for b in np.unique(bins):
        residual = (rating - expected)[bins == b]
        if len(residual) > 100:
            assert abs(residual.mean()) < 4 * residual.std() / np.sqrt(len(residual)), b
    # noise, clipping and rounding: the floor sits near the noise std; the mean is far off
    noise = truth["noise_std"]
    assert 0.85 * noise < truth["bayes_rmse"] < np.sqrt(noise**2 + 1 / 48)
    assert rmse(rating.mean()) == pytest.approx(truth["mean_rmse"], abs=1e-4)
    assert truth["mean_rmse"] > truth["bayes_rmse"] + 0.15


def test_default_sizes_scale_like_movielens():
    assert default_sizes(10_000_000) == (70_000, 10_000)
    users, items = default_sizes(100_000)
    assert 900 < users < 1300 and 1400 < items < 1800  # ml-100k: 943 users, 1682 movies


def test_activity_is_a_capped_power_law():
    p = _activity(1000, 1.0, cap=0.01)
    assert p.sum() == pytest.approx(1.0)
    assert p.max() == pytest.approx(0.01) and (np.diff(p) <= 1e-15).all()
    assert p[-1] / p[500] == pytest.approx(501 / 1000)  # the uncapped tail keeps its shape


def test_too_dense_is_refused(tmp_path):
    with pytest.raises(DataError, match="config key 'synthetic': 1000 ratings of 40 users x 50"):
        generate(tmp_path, n_ratings=1000, n_users=40, n_items=50, seed=0, **MODEL)
