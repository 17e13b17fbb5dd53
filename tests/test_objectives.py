"""The ranking objective on real ratings: negatives, its loss, its valid metric."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from deepfm_rec.data.batches import BatchMaker
from deepfm_rec.data.encoding import SPLITS
from deepfm_rec.data.errors import DataError
from deepfm_rec.inference import load_model
from deepfm_rec.item_rankers import PopularityRanker
from deepfm_rec.metrics import relevant_items
from deepfm_rec.objectives import NegativeSampler, Ranking, SampledSoftmax, Stars
from deepfm_rec.recommend import Recommender
from deepfm_rec.topk import rank_and_score
from deepfm_rec.train import train
from settings_helpers import shipped

FIELDS = ["user", "item", "history", "genres", "raters"]
CHANGES = {"max_epochs": 3, "negatives": 1000, "fields": FIELDS, "embed_dim": 16, "pooling": "mean"}
RANKING, HPARAMS = shipped("fm", "ranking", **CHANGES)
STARS, _ = shipped("fm", "stars", fields=FIELDS)


def train_movies(encoded) -> dict[int, set[int]]:
    """Each user code's train movies, with pandas."""
    a = encoded.arrays
    rows = pd.DataFrame({"user": a["user"], "item": a["item"], "split": a["split"]})
    train = rows[(rows["split"] == SPLITS["train"]) & (rows["user"] > 0)]
    return train.groupby("user")["item"].apply(set).to_dict()


@pytest.mark.parametrize(
    ("count", "method"), [(300, "uniform"), (300, "popularity"), (0, "uniform")]
)
def test_negatives_never_count_a_movie_the_user_rated_in_train(encoded_small, count, method):
    """For real users, the negatives a row keeps (not masked) are movies its user did not
    rate in train, and the masked ones are exactly those they did."""
    rated = train_movies(encoded_small)
    sampler = NegativeSampler(
        encoded_small, torch.device("cpu"), count, method, torch.Generator().manual_seed(0)
    )
    users = torch.tensor(sorted(rated)[:40] + [1, 1, 7])  # repeated users, as in a batch
    for _ in range(3):
        items, masked, log_q = sampler(users)
        assert len(items) == (count or encoded_small.size("item") - 1)
        assert len(set(items.tolist())) == len(items) and (items > 0).all()  # distinct codes
        assert (log_q is None) == (count == 0)
        for row, user in enumerate(users.tolist()):
            kept = set(items[~masked[row]].tolist())
            assert not kept & rated[user]
            assert set(items[masked[row]].tolist()) == set(items.tolist()) & rated[user]


def test_popularity_draws_favour_the_most_rated_movies(encoded_small):
    train = encoded_small.rows("train")
    counts = np.bincount(np.asarray(encoded_small.arrays["item"])[train])
    draws = {}
    for method in ("uniform", "popularity"):
        sampler = NegativeSampler(
            encoded_small, torch.device("cpu"), 500, method, torch.Generator().manual_seed(1)
        )
        items, _, _ = sampler(torch.tensor([1]))
        draws[method] = counts[items.numpy()].mean()
    assert draws["popularity"] > 2 * draws["uniform"]


def test_a_ranking_model_sees_no_pair_fields_nor_held_out_pairs(encoded_small, tmp_path):
    maker = BatchMaker(encoded_small, fields=[*FIELDS, "tags"])
    with pytest.raises(DataError, match=r"\['tags'\] are a rating's own"):
        Ranking(encoded_small, maker, RANKING, [*FIELDS, "tags"], torch.Generator(), 0)
    observed = type(encoded_small)(
        encoded_small.folder, {**encoded_small.meta, "implicit": "observed"}, encoded_small.arrays
    )
    with pytest.raises(DataError, match=r"config key 'implicit' is 'observed'"):
        Ranking(observed, maker, RANKING, FIELDS, torch.Generator(), 0)


def test_an_objective_of_some_users_trains_and_validates_on_their_rows_only(encoded_small):
    """An l2 choice's sample (train_model): given `users`, Stars' train and valid rows and
    Ranking's positives and valid users are exactly those of the users in it."""
    user = np.asarray(encoded_small.arrays["user"])
    users = np.random.default_rng(0).random(encoded_small.size("user")) < 0.3
    maker = BatchMaker(encoded_small, fields=FIELDS)
    stars, everyone = Stars(encoded_small, maker, STARS, users), Stars(encoded_small, maker, STARS)
    for split, some, every in [
        ("train", stars.train_rows, everyone.train_rows),
        ("valid", stars.valid_rows, everyone.valid_rows),
    ]:
        assert (every == encoded_small.rows(split)).all()
        assert (some == every[users[user[every]]]).all() and 0 < len(some) < len(every)
    label = np.asarray(encoded_small.arrays["label"])
    assert (stars.valid_label == label[stars.valid_rows]).all()
    ranking = Ranking(encoded_small, maker, RANKING, FIELDS, torch.Generator(), 0, users)
    every = Ranking(encoded_small, maker, RANKING, FIELDS, torch.Generator(), 0)
    assert (ranking.positives == every.positives[users[user[every.positives]]]).all()
    assert users[ranking.relevant.users].all()
    assert set(ranking.relevant.users) == {u for u in every.relevant.users if users[u]}


@pytest.fixture(scope="module")
def ranked(encoded_small, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ranking")
    model, history, kept = train(
        encoded_small, "fm", HPARAMS, RANKING, seed=3, device="cpu", checkpoint=folder / "model.pt"
    )
    return model, history, kept, folder / "model.pt"


@pytest.mark.slow
def test_ranking_training_keeps_the_best_valid_ndcg(encoded_small, ranked):
    model, history, kept, checkpoint = ranked
    assert list(history.columns) == [
        "epoch",
        "train_loss",
        "valid_ndcg",
        "valid_recall",
        "lr",
        "seconds",
    ]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    best = history.set_index("epoch").loc[kept, "valid_ndcg"]
    assert best == history["valid_ndcg"].max()
    # the restored weights score that NDCG@10 on the valid split again
    relevant = relevant_items(encoded_small, "valid", RANKING.threshold)
    loaded, state = load_model(checkpoint, "cpu", encoded_small)
    again = rank_and_score(Recommender(loaded, encoded_small), relevant, [10], "train")
    assert again["ndcg"].iloc[0] == pytest.approx(best, abs=1e-6)
    assert state["best"] == {"valid_ndcg": pytest.approx(best)} and loaded.objective == "ranking"


@pytest.mark.slow
def test_ranking_training_beats_popularity_and_is_deterministic(encoded_small, ranked):
    model, history, _, _ = ranked
    relevant = relevant_items(encoded_small, "valid", RANKING.threshold)
    popularity = rank_and_score(PopularityRanker(encoded_small), relevant, [10], "train")
    # three short epochs already rank better than the most-rated list (deterministic; the
    # margin is small this early: 0.005 here, and an init one draw apart gave 0.011)
    assert history["valid_ndcg"].max() > popularity["ndcg"].iloc[0] + 0.005
    short = replace(RANKING, max_epochs=1)
    _, first, _ = train(encoded_small, "fm", HPARAMS, short, seed=3, device="cpu")
    pd.testing.assert_frame_equal(
        first.drop(columns="seconds"), history.drop(columns="seconds").iloc[:1]
    )


@pytest.mark.parametrize("corrected", [True, False])
def test_the_softmax_loss_and_its_gradients_equal_autograds_of_the_plain_formula(corrected):
    generator = torch.Generator().manual_seed(3)
    positive = torch.randn(64, generator=generator, dtype=torch.float64) * 3
    negative = torch.randn(64, 200, generator=generator, dtype=torch.float64) * 3
    rated = torch.rand(64, 200, generator=generator) < 0.3
    rated[0] = True  # a row whose every negative is masked: only its positive is left
    log_q = torch.rand(200, generator=generator, dtype=torch.float64).log() if corrected else None
    grads = []
    for fused in (True, False):
        p, n = positive.clone().requires_grad_(), negative.clone().requires_grad_()
        if fused:
            loss = SampledSoftmax.apply(p, n, rated, log_q)
        else:
            logits = (n - log_q if corrected else n).masked_fill(rated, -math.inf)
            loss = -torch.log_softmax(torch.cat([p[:, None], logits], dim=1), dim=1)[:, 0].mean()
        (2.5 * loss).backward()
        grads.append((loss.detach(), p.grad, n.grad))
    for fused, plain in zip(*grads, strict=True):
        assert torch.allclose(fused, plain, rtol=1e-10, atol=1e-12)
    assert grads[0][2][0].abs().max() < 1e-25 and grads[0][1][0] == 0  # row 0: no gradient
