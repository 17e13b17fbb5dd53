"""Scoring on the test split: a trained model, and every baseline (deepfm_rec.metrics's
metrics; the rankers through deepfm_rec.topk.rank_and_score).

Rating baselines: the global train mean, and the damped user+item bias predictor
r = mu + b_u + b_i (Koren, "Factor in the neighbors", TKDD 2010, section 2.1), whose
damping terms are chosen on the validation split.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from loguru import logger

from deepfm_rec.data.batches import BatchMaker
from deepfm_rec.data.encoding import Encoded, open_encoded
from deepfm_rec.inference import load_model, predict
from deepfm_rec.item_rankers import PopularityRanker, fit_item_rankers
from deepfm_rec.metrics import rating_metrics, relevant_items
from deepfm_rec.topk import ModelRanker, rank_and_score

DAMPING_GRID = (0.0, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 25.0, 35.0, 50.0)


@dataclass
class BiasBaseline:
    """mu + b_u + b_i with biases shrunk toward zero by damping terms (stars)."""

    mu: float
    user_bias: np.ndarray  # float64 (users,), by user code
    item_bias: np.ndarray  # float64 (items,), by item code
    user_damping: float
    item_damping: float

    @classmethod
    def fit(
        cls,
        user: np.ndarray,
        item: np.ndarray,
        label: np.ndarray,
        n_users: int,
        n_items: int,
        user_damping: float,
        item_damping: float,
        passes: int = 4,
    ) -> BiasBaseline:
        """Alternating closed-form passes: b_i = sum(r - mu - b_u) / (damping + n_i), then b_u."""
        label = np.asarray(label, np.float64)
        mu = float(label.mean())
        count_u = np.bincount(user, minlength=n_users)
        count_i = np.bincount(item, minlength=n_items)
        b_u = np.zeros(n_users)
        b_i = np.zeros(n_items)
        for _ in range(passes):
            residual = label - mu - b_u[user]
            b_i = np.bincount(item, residual, n_items) / (item_damping + count_i + 1e-12)
            residual = label - mu - b_i[item]
            b_u = np.bincount(user, residual, n_users) / (user_damping + count_u + 1e-12)
        return cls(mu, b_u, b_i, user_damping, item_damping)

    def predict(self, user: np.ndarray, item: np.ndarray, low: float, high: float) -> np.ndarray:
        """Clipped predictions (stars); unknown users/items (code 0) get no bias."""
        return np.clip(self.mu + self.user_bias[user] + self.item_bias[item], low, high)


def baselines(encoded: Encoded) -> dict[str, dict]:
    """Test metrics of the global mean and the tuned bias baseline, with the chosen damping."""
    a, meta = encoded.arrays, encoded.meta
    low, high = meta["rating_min"], meta["rating_max"]
    train, valid, test = (encoded.rows(s) for s in ("train", "valid", "test"))
    user, item, label = (np.asarray(a[k]) for k in ("user", "item", "label"))
    sizes = {f["name"]: f.get("vocab_size", 0) for f in meta["fields"]}

    def fit(du: float, di: float) -> BiasBaseline:
        return BiasBaseline.fit(
            user[train], item[train], label[train], sizes["user"], sizes["item"], du, di
        )

    def valid_rmse(model: BiasBaseline) -> float:
        return rating_metrics(model.predict(user[valid], item[valid], low, high), label[valid])[
            "rmse"
        ]

    scores = {
        (du, di): valid_rmse(fit(du, di)) for du, di in itertools.product(DAMPING_GRID, repeat=2)
    }
    du, di = min(scores, key=scores.get)
    logger.info(
        "bias baseline: damping user {} item {} (valid RMSE {:.4f})", du, di, scores[du, di]
    )
    best = fit(du, di)
    mean = float(label[train].mean())
    return {
        "global_mean": {
            **rating_metrics(np.clip(np.full(len(test), mean), low, high), label[test]),
            "params": {"mu": mean},
        },
        "bias": {
            **rating_metrics(best.predict(user[test], item[test], low, high), label[test]),
            "params": {"user_damping": du, "item_damping": di, "valid_rmse": scores[du, di]},
        },
    }


def evaluate_model(
    encoded: Encoded,
    checkpoint: str | Path,
    *,
    device: str,
    ks: tuple[int, ...],
    threshold: float,
    memory_budget: float,
    exclude: str,
) -> dict:
    """Test metrics of one trained model on the whole test split, with its seed.

    A star model's rating metrics in stars (a ranking model predicts no stars); for
    both, under "ranking", the metrics at each K of `ks` (relevant: test ratings of at
    least `threshold` stars; candidates: the movies a user did not rate in the
    `exclude` splits; see deepfm_rec.metrics). `memory_budget` as for BatchMaker.
    """
    model, state = load_model(Path(checkpoint), device, encoded)
    record = {"model": state["model"], "objective": model.objective, "kind": "model"}
    if model.objective == "stars":
        test = encoded.rows("test")
        label = np.asarray(encoded.arrays["label"])[test]
        maker = BatchMaker(
            encoded, next(model.parameters()).device, memory_budget, fields=model.fields
        )
        record |= rating_metrics(predict(model, maker, test, 8192), label)
        logger.info(
            "{} seed {}: test RMSE {:.4f} MAE {:.4f}",
            state["model"],
            state["seed"],
            record["rmse"],
            record["mae"],
        )
    relevant = relevant_items(encoded, "test", threshold)
    ranking = rank_and_score(ModelRanker(model, encoded), relevant, ks, exclude)
    ((monitor, best),) = state["best"].items()
    return (
        record
        | {
            "seed": state["seed"],
            "best_epoch": state["epoch"],
            "monitor": monitor,
            "best_valid": best,
            "l2": state["train_config"]["l2"],
            "fields": model.fields,
            "split": "test",
            "exclude": exclude,
            "dataset": encoded.meta["dataset"],
            "checksum": encoded.meta["checksum"],
            "ranking": ranking.to_dict("records"),
        }
        | {key: state[key] for key in ("l2_scores", "l2_users") if key in state}
    )


def write_model_metrics(
    encoded: str | Path,
    checkpoint: str | Path,
    out: str | Path,
    *,
    ks: list[int],
    threshold: float,
    exclude: str,
    device: str,
    threads: int,
    memory_budget: float,
) -> dict:
    """Evaluate one checkpoint (see evaluate_model) and write its metrics.json."""
    torch.set_num_threads(threads)
    encoded = open_encoded(Path(encoded))
    record = evaluate_model(
        encoded,
        checkpoint,
        device=device,
        ks=tuple(ks),
        threshold=threshold,
        memory_budget=memory_budget,
        exclude=exclude,
    )
    Path(out).write_text(json.dumps(record, indent=2) + "\n")
    return record


def write_baselines(
    encoded: str | Path,
    out: str | Path,
    *,
    ks: list[int],
    k: int,
    threshold: float,
    exclude: str,
    threads: int,
    memory_budget: float,
) -> list[dict]:
    """Score the rating baselines (see `baselines`) and the ranking baselines (popularity,
    and ItemKNN and EASE tuned on valid NDCG@k: deepfm_rec.item_rankers) on the test split,
    and write them as JSON, one record each."""
    torch.set_num_threads(threads)
    encoded = open_encoded(Path(encoded))
    records = [
        {"model": name, "kind": "baseline", **metrics}
        for name, metrics in baselines(encoded).items()
    ]
    relevant = relevant_items(encoded, "test", threshold)
    ranking = rank_and_score(PopularityRanker(encoded), relevant, tuple(ks), exclude)
    records.append(
        {"model": "popularity", "kind": "baseline", "ranking": ranking.to_dict("records")}
    )
    records += fit_item_rankers(
        encoded, ks=ks, threshold=threshold, memory_budget=memory_budget, k=k, exclude=exclude
    )
    Path(out).write_text(json.dumps(records, indent=2) + "\n")
    return records
