"""A seeded hyperparameter search on the validation split (Optuna's TPE sampler).

Each trial trains a config section with some of its settings drawn from SPACES, once per
training seed, and scores it on the valid split only: the mean over the seeds of the valid
RMSE (stars) at the kept epoch, or of the valid NDCG@k (ranking). The test split is never
read. The sampler and every training are seeded, so the same command on the same data
gives the same trials on the CPU.

    deepfm-rec tune --model deepfm --objective stars --trials 30 --seeds 42 43 --out tune.tsv

Shapes: none; units: stars for RMSE.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import optuna
import pandas as pd
import torch
from loguru import logger

from deepfm_rec.data.encoding import open_encoded
from deepfm_rec.data.staging import replaced
from deepfm_rec.train import split_settings, train

# The settings each search draws, by (model, objective): name -> (kind, arguments).
# "log": log-uniform float in [low, high]; "float": uniform; "choice": one of the values.
SHARED = {
    "lr": ("log", 0.0005, 0.01),
    "l2": ("log", 0.001, 0.1),
    "embed_dim": ("choice", [16, 32, 64]),
}
MLP = {
    "mlp": ("choice", [[8], [16], [64], [128, 64], [128, 64, 32], [256, 128]]),
    "dropout": ("float", 0.0, 0.9),
    "field_dropout": ("float", 0.0, 0.9),
}
SPACES = {
    ("fm", "stars"): SHARED,
    ("deepfm", "stars"): SHARED | MLP,
    ("fm", "ranking"): SHARED | {"negatives": ("choice", [256, 512, 1024])},
    ("deepfm", "ranking"): SHARED | MLP | {"negatives": ("choice", [256, 512])},
}


def suggest(trial: optuna.Trial, space: dict) -> dict:
    """One draw of the settings of `space`."""
    drawn = {}
    for name, (kind, *args) in space.items():
        if kind == "log":
            drawn[name] = trial.suggest_float(name, *args, log=True)
        elif kind == "float":
            drawn[name] = trial.suggest_float(name, *args)
        else:  # Optuna's choices are scalars: lists are drawn by their position
            index = trial.suggest_categorical(name, list(range(len(args[0]))))
            drawn[name] = args[0][index]
    return drawn


def in_space(value, kind: str, args: list) -> bool:
    """Whether `value` is one that a SPACES entry (kind, *args) can draw."""
    if kind == "choice":
        return value in args[0]
    return isinstance(value, int | float) and args[0] <= value <= args[1]


def valid_score(history: pd.DataFrame, kept: int, objective: str) -> float:
    """The kept epoch's valid RMSE (stars, to minimise) or valid NDCG (to maximise)."""
    row = history.set_index("epoch").loc[kept]
    return math.sqrt(row["valid_mse"]) if objective == "stars" else float(row["valid_ndcg"])


def search(
    encoded: str | Path,
    model: str,
    settings: dict,
    *,
    trials: int,
    seed: int = 0,
    seeds: list[int] | None = None,
    device: str = "cpu",
    threads: int | None = None,
    out: str | Path | None = None,
) -> pd.DataFrame:
    """Run `trials` trials of `model` from the config section `settings` (which holds
    the objective, and k and threshold for ranking), each with SPACES' settings drawn by
    TPE seeded with `seed` and trained once per seed of `seeds` (default: `seed`); the
    first trial is the section itself where its settings lie in the space.

    Returns one row per trial, best first: the drawn settings, the valid score (valid_rmse
    or valid_ndcg, the mean over the seeds), the kept epochs (one per seed, "/"-joined) and
    the seconds the trial took. With `out`, that table is written there (TSV) as each
    trial ends, so that an interrupted search keeps the trials it ran.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    objective = settings["objective"]
    space = SPACES[model, objective]
    enc = open_encoded(Path(encoded))
    score_name = "valid_rmse" if objective == "stars" else "valid_ndcg"
    seeds = [seed] if seeds is None else seeds
    rows = []

    def table() -> pd.DataFrame:
        trials = pd.DataFrame(rows)
        return trials.sort_values(score_name, ascending=objective == "stars", ignore_index=True)

    def run(trial: optuna.Trial) -> float:
        drawn = suggest(trial, space)
        config, hparams = split_settings({**settings, **drawn})
        start = time.perf_counter()
        scores, kept = [], []
        for training_seed in seeds:
            _, history, epoch = train(
                enc, model, hparams, config, seed=training_seed, device=device
            )
            scores.append(valid_score(history, epoch, objective))
            kept.append(str(epoch))
        score = sum(scores) / len(scores)
        rows.append(
            {
                "trial": trial.number,
                **drawn,
                score_name: score,
                "kept_epochs": "/".join(kept),
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        logger.info("trial {}: {} {:.4f} with {}", trial.number, score_name, score, drawn)
        if out is not None:
            with replaced(out) as scratch:
                table().to_csv(scratch, sep="\t", index=False, float_format="%.6g")
        return score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize" if objective == "stars" else "maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    if all(in_space(settings.get(name), kind, args) for name, (kind, *args) in space.items()):
        study.enqueue_trial(
            {  # choices by their position, as suggest draws them
                name: args[0].index(settings[name]) if kind == "choice" else settings[name]
                for name, (kind, *args) in space.items()
            }
        )
    else:
        logger.info("the section's own settings are outside the space: trial 0 is a draw too")
    study.optimize(run, n_trials=trials)
    return table()
