"""The shipped config's settings (deepfm_rec.config), for tests that train or build models:
the library takes every setting, and the schema holds the study's values."""

from __future__ import annotations

from pathlib import Path

from deepfm_rec.config import CONFIG, SCHEMA, first_l2, load_config, train_settings
from deepfm_rec.models import build_model
from deepfm_rec.train import TrainConfig, split_settings

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = load_config(ROOT / CONFIG, ROOT / SCHEMA)


def shipped(model: str, objective: str, **changes) -> tuple[TrainConfig, dict]:
    """(TrainConfig, model hparams) of the shipped section of `model` for `objective`,
    `changes` applied (a setting of either)."""
    return split_settings(first_l2(train_settings(SHIPPED, model, objective)) | changes)


def shipped_model(name: str, meta: dict, **changes):
    """The untrained model `name` of the shipped stars section, `changes` applied."""
    config, hparams = shipped(name, "stars", **changes)
    return build_model(name, meta, objective=config.objective, sparse=False, **hparams)
