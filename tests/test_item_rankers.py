"""ItemKNN and EASE: hand-computed similarities, EASE against a direct solve of its objective,
and the tuned baselines on real ratings (tuned on valid, better than popularity, capped)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import deepfm_rec.item_rankers as item_rankers
from data_helpers import rows_encoded
from deepfm_rec.data.encoding import Encoded
from deepfm_rec.item_rankers import EASE, ItemKNN, PopularityRanker, fit_item_rankers, most_rated
from deepfm_rec.metrics import relevant_items
from deepfm_rec.topk import rank_and_score, rated_items, train_counts

BUDGET = 8e9
S6, S3 = np.sqrt(6), np.sqrt(3)


def matrix_encoded(x: np.ndarray, extra: list[tuple[int, int, float, str]] = ()) -> Encoded:
    """An encoded folder whose train ratings are the binary matrix x (users × movies, user
    and movie codes from 1), plus `extra` (user, item, stars, split) rows."""
    users, items = np.nonzero(x)
    rows = [(u + 1, i + 1, 4.0, "train") for u, i in zip(users, items, strict=True)]
    return rows_encoded(rows + list(extra), *x.shape)


# users 1-4 × movies 1-4; the movies' raters: 1 {1, 2}, 2 {1, 2, 3}, 3 {2, 3, 4}, 4 {4}
HAND = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 1, 1]])
# cosine: (1,2) 2/√(2·3), (1,3) 1/√6, (2,3) 2/3, (3,4) 1/√3, (1,4) = (2,4) = 0
COSINE = np.array(
    [
        [0, 2 / S6, 1 / S6, 0],
        [2 / S6, 0, 2 / 3, 0],
        [1 / S6, 2 / 3, 0, 1 / S3],
        [0, 0, 1 / S3, 0],
    ]
)


def test_itemknn_by_hand():
    encoded = matrix_encoded(HAND)
    # nearest neighbour of each movie: 1 -> 2 (0.816), 2 -> 1 (0.816 > 2/3),
    # 3 -> 2 (2/3 > 1/√3 > 1/√6), 4 -> 3 (1/√3)
    target = np.zeros((4, 4))  # W[i, j] = sim(i, j) when i is j's neighbour (per column)
    target[1, 0] = target[0, 1] = 2 / S6
    target[1, 2], target[2, 3] = 2 / 3, 1 / S3
    source = np.zeros((4, 4))  # W[i, j] = sim(i, j) when j is i's neighbour (per row)
    source[0, 1] = source[1, 0] = 2 / S6
    source[2, 1], source[3, 2] = 2 / 3, 1 / S3
    for truncate, w in (("target", target), ("source", source)):
        ranker = ItemKNN(encoded, 1, memory_budget=BUDGET, max_neighbours=3, truncate=truncate)
        assert ranker.weights().numpy() == pytest.approx(w, abs=1e-6)
        scores = ranker.scores(torch.arange(1, 5)).numpy()  # (users, movies) = X W
        assert scores == pytest.approx(HAND @ w, abs=1e-6)
        ranker.neighbours = 3  # every other movie: no truncation, both variants alike
        assert ranker.weights().numpy() == pytest.approx(COSINE, abs=1e-6)
    # user 4 rated 3 and 4: movie 3 votes for its neighbour 2, movie 4 for 3 (rated)
    ranker = ItemKNN(encoded, 1, memory_budget=BUDGET, truncate="source")
    items, values = ranker.top_k(np.array([4]), 2)
    assert items.tolist() == [[2, 1]] and values[0] == pytest.approx([2 / 3, 0])
    with pytest.raises(ValueError, match="neighbours must be in"):
        ItemKNN(encoded, 1, memory_budget=BUDGET, max_neighbours=2).neighbours = 3


def ease_direct(x: np.ndarray, lam: float) -> np.ndarray:
    """argmin ||X − XB||² + λ||B||² s.t. diag(B) = 0, one column at a time: column j is the
    ridge regression of X[:, j] on the other columns (b_jj, removed, is 0)."""
    n = x.shape[1]
    b = np.zeros((n, n))
    for j in range(n):  # reference only: a loop over a handful of columns
        others = np.delete(np.arange(n), j)
        a = x[:, others]
        b[others, j] = np.linalg.solve(a.T @ a + lam * np.eye(n - 1), a.T @ x[:, j])
    return b


@pytest.mark.parametrize("shape", [(14, 6), (5, 13)])  # more users than movies, and fewer
def test_ease_solves_its_objective(shape):
    rng = np.random.default_rng(sum(shape))
    x = (rng.random(shape) < 0.4).astype(np.float64)
    x[rng.integers(shape[0], size=shape[1]), np.arange(shape[1])] = 1  # every movie rated
    encoded = matrix_encoded(x)
    for lam in (0.5, 3.0):
        expected = ease_direct(x, lam)
        assert np.abs(expected).max() > 0.05  # not a vacuous zero matrix
        for solver in ("primal", "dual"):
            ranker = EASE(encoded, lam, memory_budget=BUDGET, solver=solver)
            assert ranker.dual == (solver == "dual")
            b = ranker.weights().numpy()
            assert np.abs(b - expected).max() < 1e-6, (solver, lam)
            scores = ranker.scores(torch.arange(1, shape[0] + 1)).numpy()
            assert np.abs(scores - x @ expected).max() < 1e-5
    # "auto" takes the dual where users are at most half the movies
    assert EASE(encoded, 1.0, memory_budget=BUDGET).dual == (2 * shape[0] <= shape[1])
    # a budget that leaves room for XᵀX's columns two at a time (the last one alone where
    # the movies are odd): the same co-rating counts
    n, users = shape[1], shape[0] + 1  # user code 0 has a row of X too
    tight = 12 * n**2 + 2 * 4 * (users + n)
    blocked = EASE(encoded, 1.0, memory_budget=tight, solver="primal")
    assert torch.equal(blocked.gram, torch.from_numpy(x.T @ x).float())


@pytest.fixture(scope="module")
def fitted(encoded_small):
    """The two tuned baselines on ml-latest-small (seed 7), and popularity beside them."""
    records = fit_item_rankers(
        encoded_small, ks=(1, 10, 20), threshold=4.0, memory_budget=BUDGET, k=10, exclude="train"
    )
    popularity = rank_and_score(
        PopularityRanker(encoded_small), relevant_items(encoded_small, "test", 4.0), (10,)
    )
    return {r["model"]: r for r in records}, float(popularity["ndcg"].iloc[0])


def at(record: dict, k: int) -> dict:
    return next(row for row in record["ranking"] if row["k"] == k)


@pytest.mark.slow
def test_records_have_the_baseline_form(fitted, encoded_small):
    records, _ = fitted
    assert list(records) == ["itemknn", "ease"]
    test_users = len(relevant_items(encoded_small, "test", 4.0))
    n_total = len(train_counts(encoded_small))
    for record in records.values():
        json.dumps(record)  # written as JSON by the baselines rule
        assert record["kind"] == "baseline"
        assert [row["k"] for row in record["ranking"]] == [1, 10, 20]
        assert {row["users"] for row in record["ranking"]} == {test_users}
        assert set(record["ranking"][0]) == {
            "k",
            "users",
            "hr",
            "precision",
            "recall",
            "ndcg",
            "coverage",
            "popularity",
        }
        params = record["params"]
        assert params["items_used"] == params["items_total"] == n_total  # 8 GB: all of them
        assert params["tuned_on"] == "valid ndcg@10"


@pytest.mark.slow
def test_both_beat_popularity_by_far(fitted):
    records, popularity = fitted
    assert 0.09 < popularity < 0.12  # the reference: 0.104
    for record in records.values():
        assert at(record, 10)["ndcg"] > 1.4 * popularity, record["model"]
    assert at(records["ease"], 10)["ndcg"] > at(records["itemknn"], 10)["ndcg"]


@pytest.mark.parametrize(
    ("model", "name", "grid"),
    [
        ("itemknn", "neighbours", item_rankers.DEFAULT_NEIGHBOURS),
        ("ease", "lambda", item_rankers.DEFAULT_LAMBDAS),
    ],
)
@pytest.mark.slow
def test_chosen_on_valid(fitted, encoded_small, model, name, grid):
    params = fitted[0][model]["params"]
    tuning = params["tuning"]
    assert [row[name] for row in tuning] == list(grid)
    ndcgs = [row["valid_ndcg"] for row in tuning]
    assert max(ndcgs) - min(ndcgs) > 0.01  # the grid matters, so the choice means something
    assert params[name] in grid and params[name] == grid[int(np.argmax(ndcgs))]
    # the recorded value is the valid NDCG@10 (train excluded) of a ranker fitted afresh
    if model == "itemknn":
        ranker = ItemKNN(encoded_small, params[name], memory_budget=BUDGET)
    else:
        ranker = EASE(encoded_small, params[name], memory_budget=BUDGET)
    valid = rank_and_score(ranker, relevant_items(encoded_small, "valid", 4.0), (10,), "train")
    assert float(valid["ndcg"].iloc[0]) == pytest.approx(max(ndcgs), abs=1e-9)
    # ... and the test metrics are those of the chosen value
    test = rank_and_score(ranker, relevant_items(encoded_small, "test", 4.0), (1, 10, 20))
    assert test.to_dict("records") == fitted[0][model]["ranking"]  # the same computation
    # the reference's λ on this data was 200 among 50..1000; ItemKNN's lists: 20 here
    if model == "ease":
        assert 100 <= params[name] <= 500


@pytest.mark.slow
def test_lists_exclude_train_movies(encoded_small):
    users = relevant_items(encoded_small, "test", 4.0).users
    indptr, rated = rated_items(encoded_small, ["train"])
    for ranker in (
        ItemKNN(encoded_small, 20, memory_budget=BUDGET),
        EASE(encoded_small, 200.0, memory_budget=BUDGET),
    ):
        items, values = ranker.top_k(users, 100)
        assert (items > 0).all() and np.isfinite(values).all()  # everyone has 100 candidates
        owner = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        train = set(zip(owner.tolist(), rated.tolist(), strict=True))
        listed = zip(np.repeat(users, 100).tolist(), items.reshape(-1).tolist(), strict=True)
        assert not train & set(listed)
        assert all(len(set(row)) == 100 for row in items.tolist())


def test_ease_caps_the_catalogue_to_the_budget(encoded_small):
    counts = train_counts(encoded_small)
    # 3 MB: the primal's 12 N² bytes allow N = 500 (the top 500 movies reach far more than
    # 250 users, so the primal it is)
    ranker = EASE(encoded_small, 200.0, memory_budget=3e6)
    assert not ranker.dual
    assert ranker.coverage() == {"items_used": 500, "items_total": len(counts)}
    modelled = most_rated(counts, 500)
    assert ranker.columns.tolist() == modelled.tolist()
    assert counts[modelled].min() >= np.delete(counts, modelled).max()
    # every list: the user's modelled candidates first, then the others by popularity
    users = relevant_items(encoded_small, "test", 4.0).users
    items, _ = ranker.top_k(users, 1000)  # every user has over 6,000 candidates
    indptr, rated = rated_items(encoded_small, ["train"])
    owner = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    rated_modelled = np.bincount(owner[np.isin(rated - 1, modelled)], minlength=len(indptr))
    first = 500 - rated_modelled[users]  # (U,) modelled candidates of each user
    assert first.min() < 300  # some lists reach into the unmodelled movies early
    is_modelled = np.isin(items - 1, modelled)
    assert (is_modelled == (np.arange(1000) < first[:, None])).all()
    tail = np.where(is_modelled, np.iinfo(np.int64).max, counts[items - 1])
    assert (np.diff(tail, axis=1) <= 0).all()  # the unmodelled by train ratings
    # still far better than popularity on test
    test = rank_and_score(ranker, relevant_items(encoded_small, "test", 4.0), (10,))
    assert float(test["ndcg"].iloc[0]) > 0.15


def test_itemknn_blocks_do_not_change_the_lists(encoded_tiny):
    whole = ItemKNN(encoded_tiny, 50, memory_budget=BUDGET)
    n, users = whole.n_modelled, whole.n_users
    assert whole.block == n > 2000
    # a block holds 4 bytes per user and 12 per movie for each of its movies: 300 a block
    blocks = ItemKNN(encoded_tiny, 50, memory_budget=300 * (4 * users + 12 * n))
    assert blocks.block == 300 and n % 300  # a shorter last block too
    assert torch.equal(whole.neighbour_items, blocks.neighbour_items)
    assert torch.equal(whole.neighbour_sims, blocks.neighbour_sims)
    assert blocks.coverage()["items_used"] == blocks.coverage()["items_total"] == n
    # nor does the length kept: ties at the cut go to the lower code, not to topk's whim
    short = ItemKNN(encoded_tiny, 10, memory_budget=BUDGET)
    assert torch.equal(short.neighbour_items, whole.neighbour_items[:, :10])
    tied = whole.neighbour_sims[:, 9] == whole.neighbour_sims[:, 10]
    assert tied.sum() > 100  # many movies have a tie across the cut at 10


def test_fit_passes_exclude_to_test_only_and_records_the_cap(encoded_tiny, monkeypatch):
    calls = []

    def spy(ranker, relevant, ks=(10,), exclude="train"):
        calls.append((type(ranker).__name__, len(relevant), exclude))
        return rank_and_score(ranker, relevant, ks, exclude)

    monkeypatch.setattr(item_rankers, "rank_and_score", spy)
    records = fit_item_rankers(
        encoded_tiny,
        ks=(5, 10),
        threshold=4.0,
        memory_budget=2e6,
        k=10,
        exclude="train+valid",
        neighbours=(5, 10),
        lambdas=(50.0, 500.0),
    )
    n_valid = len(relevant_items(encoded_tiny, "valid", 4.0))
    n_test = len(relevant_items(encoded_tiny, "test", 4.0))
    assert calls == [
        ("ItemKNN", n_valid, "train"),
        ("ItemKNN", n_valid, "train"),
        ("ItemKNN", n_test, "train+valid"),
        ("EASE", n_valid, "train"),
        ("EASE", n_valid, "train"),
        ("EASE", n_test, "train+valid"),
    ]
    knn, ease = (r["params"] for r in records)
    n_total = len(train_counts(encoded_tiny))
    assert knn["items_used"] == knn["items_total"] == n_total  # lists, no N × N matrix
    assert ease["items_total"] == n_total and 0 < ease["items_used"] < n_total
    # the test metrics are those of train+valid excluded, not train alone
    ranker = EASE(encoded_tiny, ease["lambda"], memory_budget=2e6)
    test = relevant_items(encoded_tiny, "test", 4.0)
    both = rank_and_score(ranker, test, (5, 10), "train+valid")
    assert [r["ndcg"] for r in records[1]["ranking"]] == pytest.approx(both["ndcg"].tolist())
    assert both["recall"].tolist() != rank_and_score(ranker, test, (5, 10))["recall"].tolist()


def test_tuning_on_a_sample_of_valid_users_scores_exactly_that_sample(encoded_small):
    """With tuning_users below the valid users, each grid value's valid NDCG is that of a
    seeded sample of that many users (the same on a second call), and the record says so;
    test is still over every test user."""
    valid = relevant_items(encoded_small, "valid", 4.0)
    sample = valid.sample(100, 0)
    assert len(sample) == 100 and np.all(np.diff(sample.users) > 0)
    assert np.isin(sample.users, valid.users).all()
    assert np.array_equal(valid.sample(100, 0).users, sample.users)
    assert not np.array_equal(valid.sample(100, 1).users, sample.users)
    assert valid.sample(0, 0) is valid and valid.sample(len(valid), 0) is valid
    records = fit_item_rankers(
        encoded_small,
        ks=(10,),
        threshold=4.0,
        memory_budget=BUDGET,
        k=10,
        exclude="train",
        neighbours=(20,),
        lambdas=(100.0,),
        tuning_users=100,
    )
    knn = ItemKNN(encoded_small, 20, memory_budget=BUDGET)
    expected = rank_and_score(knn, sample, (10,), "train")["ndcg"].iloc[0]
    (itemknn, _) = records
    assert itemknn["params"]["tuning"][0]["valid_ndcg"] == pytest.approx(expected, abs=1e-9)
    assert itemknn["params"]["tuned_on"] == f"valid ndcg@10 over 100 of its {len(valid):,} users"
    test_users = len(relevant_items(encoded_small, "test", 4.0))
    assert itemknn["ranking"][0]["users"] == test_users
