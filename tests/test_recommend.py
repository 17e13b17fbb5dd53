"""Recommendations on real ratings: vectorised scores against one-by-one scoring, exclusion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from deepfm_rec.data.batches import Batch, BatchMaker
from deepfm_rec.data.catalogue import read_items, user_code
from deepfm_rec.data.encoding import SPLITS, Encoded, encode, open_encoded
from deepfm_rec.data.layouts import Tables
from deepfm_rec.data.users import COLUMNS
from deepfm_rec.recommend import RECOMMENDATION_COLUMNS, Recommender, write_recommendations
from deepfm_rec.topk import exclusion_splits, rated_items
from deepfm_rec.train import train
from settings_helpers import shipped

# every user and movie field: a pair's own fields (tags, the rating's time) are not a
# candidate's, so a model of them would not score a rated row as its candidate pair
SIDE_FIELDS = [
    "user",
    "item",
    "gender",
    "occupation",
    "age",
    "genres",
    "history",
    "raters",
    "release_year",
]
HPARAMS = {"embed_dim": 8, "mlp": [16], "dropout": 0.1, "field_dropout": 0.3, "fields": SIDE_FIELDS}
QUICK = {"max_epochs": 1, "batch_size": 512, "lr": 0.01}


@pytest.fixture(scope="module")
def tiny_model(encoded_tiny):
    config, hparams = shipped("deepfm", "stars", **QUICK, **HPARAMS)
    model, _, _ = train(encoded_tiny, "deepfm", hparams, config, seed=1, device="cpu")
    return model.eval()


@pytest.fixture(scope="module")
def fm_checkpoint(encoded_tiny, tmp_path_factory):
    checkpoint = tmp_path_factory.mktemp("fm") / "model.pt"
    config, hparams = shipped("fm", "stars", **QUICK, embed_dim=4, fields=SIDE_FIELDS)
    train(encoded_tiny, "fm", hparams, config, seed=2, device="cpu", checkpoint=checkpoint)
    return checkpoint


@pytest.fixture(scope="module")
def recommender(tiny_model, encoded_tiny):
    return Recommender(tiny_model, encoded_tiny, "cpu")


def train_items(encoded: Encoded, code: int) -> set[int]:
    rows = encoded.rows("train")
    return set(encoded.arrays["item"][rows][encoded.arrays["user"][rows] == code].tolist())


@pytest.mark.parametrize("model", ["deepfm", "fm"])
def test_pair_scores_equal_the_model_on_held_out_rows(
    model, recommender, fm_checkpoint, encoded_tiny
):
    """A held-out (valid or test) row has exactly the user and movie fields of its
    candidate pair (its bags leave nothing out): the user × movie grid scores (FM's
    matmul, DeepFM's split first layer) equal the model's forward on those rows."""
    if model == "fm":
        recommender = Recommender.from_checkpoint(fm_checkpoint, encoded_tiny, "cpu")
    a = encoded_tiny.arrays
    rows = np.flatnonzero((a["split"] != SPLITS["train"]) & (a["user"] > 0) & (a["item"] > 0))
    rows = rows[:: max(1, len(rows) // 100)]  # a hundred rows
    maker = BatchMaker(encoded_tiny, fields=SIDE_FIELDS)
    with torch.inference_mode():
        expected = recommender.model(maker.batch(rows)).numpy()
        users = torch.from_numpy(a["user"][rows].astype(np.int64))
        scores = recommender.scores(users).numpy()  # (rows, C)
    got = scores[np.arange(len(rows)), a["item"][rows] - 1]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def one_pair_batch(encoded: Encoded, user: int, item: int) -> Batch:
    """A one-row Batch of the pair (user code, item code) built by hand from the arrays:
    the user's fields from one of their rows, the movie's from one of its rows."""
    a = encoded.arrays
    user_row = int(np.flatnonzero(a["user"] == user)[0])
    item_row = int(np.flatnonzero(a["item"] == item)[0])
    row_of = {"user": user_row, "item": item_row}
    owner = {f["name"]: f["owner"] for f in encoded.meta["fields"]}

    categorical = [
        int(a[n][row_of[owner[n]]])
        for n in ("user", "item", "gender", "occupation", "release_year")
    ]
    return Batch(
        categorical=torch.tensor([categorical], dtype=torch.int32),
        dense=torch.tensor([[float(a["age"][user_row])]], dtype=torch.float32),
        bag=torch.tensor(
            [[int(a[f"{n}.bag"][row_of[owner[n]]]) for n in ("genres", "history", "raters")]],
            dtype=torch.int32,
        ),
        leave=None,
        label=torch.zeros(1),
    )


def test_top_k_matches_scoring_every_pair_one_by_one(recommender, encoded_tiny, tiny_model):
    assert tiny_model.fields == [
        "user",
        "item",
        "gender",
        "occupation",
        "release_year",
        "genres",
        "history",
        "raters",
        "age",
    ]
    n_items = recommender.n_items
    k = 15
    users = np.array([3, 41])
    items, values = recommender.top_k(users, k)
    for j, code in enumerate(users):
        rated = train_items(encoded_tiny, code)
        candidates = [i for i in range(1, n_items) if i not in rated]
        with torch.inference_mode():
            scores = np.array(
                [tiny_model(one_pair_batch(encoded_tiny, code, i)).item() for i in candidates]
            )
        best = np.argsort(-scores, kind="stable")[:k]
        assert items[j].tolist() == [candidates[b] for b in best]
        np.testing.assert_allclose(values[j], scores[best], rtol=1e-5, atol=1e-5)


def test_rated_in_train_never_recommended_and_every_candidate_ranked(recommender, encoded_tiny):
    users = np.arange(1, recommender.n_users)
    c = recommender.n_candidates
    items, scores = recommender.top_k(users, c)  # every candidate, in order
    for j, code in enumerate(users):
        rated = train_items(encoded_tiny, code)
        listed = items[j][items[j] > 0]
        assert rated.isdisjoint(listed.tolist())
        assert sorted(listed.tolist()) == sorted(set(range(1, c + 1)) - rated)
        assert (items[j][len(listed) :] == 0).all() and np.isnan(scores[j][len(listed) :]).all()
        assert (np.diff(scores[j][: len(listed)]) <= 1e-6).all()  # best first
    all_items, _ = recommender.top_k(users[:3], c, exclude="none")
    assert (np.sort(all_items, axis=1) == np.arange(1, c + 1)).all()


def test_chunks_and_valid_exclusion(tiny_model, encoded_tiny, recommender):
    users = np.array([1, 7, 60, 22, 7])
    items, scores = recommender.top_k(users, 20)
    small = Recommender(tiny_model, encoded_tiny, "cpu", pairs_per_batch=1)  # a user a chunk
    items_small, scores_small = small.top_k(users, 20)
    np.testing.assert_array_equal(items, items_small)
    np.testing.assert_allclose(scores, scores_small, rtol=1e-5, atol=1e-6)
    no_valid, _ = recommender.top_k(users, 200, exclude="train+valid")
    indptr, valid = rated_items(encoded_tiny, ["valid"])
    for j, code in enumerate(users):
        assert set(valid[indptr[code] : indptr[code + 1]].tolist()).isdisjoint(no_valid[j])
    with pytest.raises(ValueError, match="unknown split"):
        exclusion_splits("train+tset")
    with pytest.raises(ValueError, match="user codes"):
        recommender.top_k(np.array([0]), 5)


def test_user_codes_map_to_movielens_ids(encoded_tiny):
    ids = encoded_tiny.arrays["user_ids"]
    assert ids[0] == -1 and (np.diff(ids[1:]) > 0).all()
    assert [user_code(encoded_tiny, int(ids[c])) for c in (1, 5, len(ids) - 1)] == [
        1,
        5,
        len(ids) - 1,
    ]
    assert user_code(encoded_tiny, 10**9) == 0 and user_code(encoded_tiny, -5) == 0


def test_write_recommendations_tsv(fm_checkpoint, encoded_tiny, tmp_path):
    ids = encoded_tiny.arrays["user_ids"]
    out = tmp_path / "top.tsv"
    settings = {"k": 5, "device": "cpu", "exclude": "train"}
    table = write_recommendations(
        fm_checkpoint, encoded_tiny.folder, out, users=[int(ids[2]), int(ids[9])], **settings
    )
    read = pd.read_csv(out, sep="\t", keep_default_na=False)
    assert list(read.columns) == RECOMMENDATION_COLUMNS
    assert read["user"].tolist() == [ids[2]] * 5 + [ids[9]] * 5
    assert read["rank"].tolist() == [1, 2, 3, 4, 5] * 2
    movies = read_items(encoded_tiny.folder).set_index("item")
    assert read["title"].tolist() == movies.loc[read["item"], "title"].tolist()
    np.testing.assert_allclose(read["predicted_stars"], read["score"].clip(0.5, 5.0), atol=1e-4)
    np.testing.assert_allclose(read["score"], table["score"], atol=1e-4)
    assert read.groupby("user")["score"].is_monotonic_decreasing.all()
    with pytest.raises(ValueError, match="without train ratings"):
        write_recommendations(fm_checkpoint, encoded_tiny.folder, out, users=[10**9], **settings)


def test_a_checkpoint_of_other_data_is_refused(encoded_tiny, fm_checkpoint):
    other = {**encoded_tiny.meta, "checksum": "another download"}
    with pytest.raises(ValueError, match="trained on other encoded data.*checksum"):
        Recommender.from_checkpoint(
            fm_checkpoint, Encoded(encoded_tiny.folder, other, encoded_tiny.arrays), "cpu"
        )
    fields = [f for f in encoded_tiny.meta["fields"] if f["name"] != "raters"]
    fewer = Encoded(
        encoded_tiny.folder, {**encoded_tiny.meta, "fields": fields}, encoded_tiny.arrays
    )
    with pytest.raises(ValueError, match="trained on other encoded data.*'fields' differs"):
        Recommender.from_checkpoint(fm_checkpoint, fewer, "cpu")


def test_a_dataset_without_demographics(tables_small, tmp_path):
    ratings = tables_small.ratings[tables_small.ratings["user"] <= 20].reset_index(drop=True)
    tables = Tables(ratings=ratings, movies=tables_small.movies, tags=tables_small.tags)
    encode(
        tables,
        pd.DataFrame(columns=COLUMNS),
        tmp_path / "encoded",
        seed=1,
        valid_fraction=0.1,
        test_fraction=0.1,
        provenance={"dataset": "ml-latest-small", "checksum": "x"},
    )
    encoded = open_encoded(tmp_path / "encoded")
    assert [f["name"] for f in encoded.meta["fields"]] == [
        "user",
        "item",
        "genres",
        "tags",
        "history",
        "raters",
        "release_year",
        "rating_year",
        "movie_age",
    ]
    fields = ["user", "item", "genres", "history", "raters"]
    config, hparams = shipped("fm", "stars", **QUICK, embed_dim=4, fields=fields)
    model, _, _ = train(encoded, "fm", hparams, config, seed=0, device="cpu")
    recommender = Recommender(model, encoded)
    users = np.arange(1, recommender.n_users)
    items, scores = recommender.top_k(users, 10)
    assert (items > 0).all() and np.isfinite(scores).all()
    a = encoded.arrays
    rows = np.flatnonzero((a["split"] == SPLITS["test"]) & (a["item"] > 0))[:50]
    with torch.inference_mode():
        expected = model(BatchMaker(encoded, fields=fields).batch(rows)).numpy()
        scores = recommender.scores(torch.from_numpy(a["user"][rows].astype(np.int64)))
    got = scores.numpy()[np.arange(len(rows)), a["item"][rows] - 1]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
