"""Scoring on a whole split: rating metrics in stars, and the two baselines.

Baselines: the global train mean, and the damped user+item bias predictor
r = mu + b_u + b_i (Koren, "Factor in the neighbors", TKDD 2010, section 2.1), whose
damping terms are chosen on the validation split.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from loguru import logger

from deepfm_rec.data.encoding import Encoded, open_encoded
from deepfm_rec.plots import plot_metrics

METRIC_COLUMNS = [
    "model",
    "kind",
    "mse",
    "rmse",
    "mae",
    "rows",
    "seed",
    "best_epoch",
    "valid_mae",
]
DAMPING_GRID = (0.0, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 25.0, 35.0, 50.0)


def rating_metrics(prediction: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """MSE, RMSE (stars²/stars) and MAE (stars) of predictions against labels."""
    error = np.asarray(prediction, np.float64) - np.asarray(label, np.float64)
    if error.size == 0:
        raise ValueError("no rows to score")
    mse = float(np.mean(error**2))
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.mean(np.abs(error))),
        "rows": int(error.size),
    }


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


def evaluate(encoded: Encoded, checkpoints: dict[str, str], device: str = "cpu") -> pd.DataFrame:
    """Test metrics of each trained model and of the baselines, one row each.

    Args:
        encoded: the encoded dataset.
        checkpoints: model name -> checkpoint path written by deepfm_rec.train.train.
        device: where to score.

    Returns:
        DataFrame with columns METRIC_COLUMNS, models first, then baselines.
    """
    from deepfm_rec.data.batches import BatchMaker  # torch only where models are scored
    from deepfm_rec.train import load_model, predict

    test = encoded.rows("test")
    label = np.asarray(encoded.arrays["label"])[test]
    rows = []
    maker = None
    for name, path in checkpoints.items():
        model, state = load_model(path, device)
        maker = maker or BatchMaker(encoded, next(model.parameters()).device)
        metrics = rating_metrics(predict(model, maker, test, 8192), label)
        rows.append(
            {
                "model": name,
                "kind": "model",
                **metrics,
                "seed": state["seed"],
                "best_epoch": state["epoch"],
                "valid_mae": state["best"]["valid_mae"],
            }
        )
        logger.info("{}: test RMSE {:.4f} MAE {:.4f}", name, metrics["rmse"], metrics["mae"])
    for name, metrics in baselines(encoded).items():
        rows.append(
            {
                "model": name,
                "kind": "baseline",
                **{k: v for k, v in metrics.items() if k != "params"},
            }
        )
    table = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    return table.astype({"seed": "Int64", "best_epoch": "Int64"})


def write_metrics(
    encoded: str | Path,
    checkpoints: dict[str, str],
    *,
    table: str | Path,
    plot: str | Path,
    jsons: dict[str, str],
    device: str,
    threads: int,
) -> pd.DataFrame:
    """Evaluate, then write the metrics table (TSV), its plot and one metrics.json per model."""
    import torch

    torch.set_num_threads(threads)
    encoded = open_encoded(Path(encoded))
    metrics = evaluate(encoded, checkpoints, device)
    metrics.to_csv(table, sep="\t", index=False, float_format="%.6f")
    plot_metrics(metrics, Path(plot))
    meta = encoded.meta
    for _, row in metrics[metrics["kind"] == "model"].iterrows():
        record = {
            **row.dropna().to_dict(),
            "split": "test",
            "dataset": meta["dataset"],
            "checksum": meta["checksum"],
        }
        Path(jsons[row["model"]]).write_text(json.dumps(record, indent=2, default=int) + "\n")
    return metrics
