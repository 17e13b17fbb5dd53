"""The seeded search on the valid split (deepfm_rec.tuning), on real ratings."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from deepfm_rec.config import train_settings
from deepfm_rec.data.errors import DataError
from deepfm_rec.search_space import SPACES, in_space, kind_of, section_space
from deepfm_rec.train import split_settings, train
from deepfm_rec.tuning import search
from settings_helpers import SHIPPED

SECTION = train_settings(SHIPPED, "deepfm", "stars") | {
    "embed_dim": 16,
    "mlp": [16],
    "dropout": 0.2,
    "field_dropout": 0.3,
    "lr": 0.003,
    "l2": 0.01,
    "batch_size": 256,
    "max_epochs": 3,
    "patience": 1,
}


SPACE = SPACES["deepfm.stars"]
BUDGET = 8e9  # bytes of per-row arrays copied to the device: all of encoded_tiny


def tune(encoded, section=SECTION, **args):
    return search(encoded.folder, "deepfm", section, SPACE, memory_budget=BUDGET, **args)


@pytest.fixture(scope="module")
def trials(encoded_tiny):
    return tune(encoded_tiny, trials=3, seed=4)


def test_the_search_is_reproducible_on_the_cpu(encoded_tiny, trials):
    again = tune(encoded_tiny, trials=3, seed=4)
    pd.testing.assert_frame_equal(trials.drop(columns="seconds"), again.drop(columns="seconds"))


def test_the_first_trial_is_the_section_and_its_score_is_its_training(encoded_tiny, trials):
    first = trials.set_index("trial").loc[0]
    for name in SPACE:
        assert first[name] == SECTION[name]
    config, hparams = split_settings(SECTION)
    _, history, kept = train(encoded_tiny, "deepfm", hparams, config, seed=4, device="cpu")
    assert first["kept_epochs"] == str(kept)
    valid_mse = history.set_index("epoch").loc[kept, "valid_mse"]
    assert first["valid_rmse"] == pytest.approx(math.sqrt(valid_mse))


def test_a_section_choosing_its_l2_starts_from_its_first_value(encoded_tiny):
    table = tune(encoded_tiny, SECTION | {"l2": [0.01, 0.05]}, trials=1, seed=4)
    first = table.set_index("trial").loc[0]
    assert first["l2"] == 0.01
    for name in set(SPACE) - {"l2"}:
        assert first[name] == SECTION[name], name


def test_with_seeds_a_trial_scores_the_mean_of_its_trainings(encoded_tiny):
    table = tune(encoded_tiny, trials=1, seed=4, seeds=[5, 6])
    config, hparams = split_settings(SECTION)
    rmses, kept = [], []
    for seed in (5, 6):
        _, history, epoch = train(encoded_tiny, "deepfm", hparams, config, seed=seed, device="cpu")
        rmses.append(math.sqrt(history.set_index("epoch").loc[epoch, "valid_mse"]))
        kept.append(str(epoch))
    assert rmses[0] != rmses[1]  # the seeds train different models
    assert table.loc[0, "valid_rmse"] == pytest.approx(sum(rmses) / 2)
    assert table.loc[0, "kept_epochs"] == "/".join(kept)


def test_the_trials_are_drawn_from_the_space_and_sorted_best_first(trials):
    assert sorted(trials["trial"]) == [0, 1, 2]
    assert list(trials["valid_rmse"]) == sorted(trials["valid_rmse"])
    for name, spec in SPACE.items():
        for value in trials.loc[trials["trial"] > 0, name]:
            assert in_space(value, spec), (name, value)


def test_a_section_outside_the_space_is_searched_from_draws(encoded_tiny):
    outside = SECTION | {"embed_dim": 8}  # not one of the space's choices
    table = tune(encoded_tiny, outside, trials=2, seed=4)
    assert set(table["embed_dim"]) <= set(SPACE["embed_dim"]["choice"])


def test_every_shipped_section_lies_in_its_space():
    """So that `deepfm-rec tune` starts from the shipped defaults (its trial 0)."""
    config = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
    for name, space in SPACES.items():
        model, objective = name.split(".")
        section = config[model][objective]
        l2 = section["l2"] if isinstance(section["l2"], list) else [section["l2"]]
        for own in (section | {"l2": value} for value in l2):  # trial 0 takes the first
            outside = [n for n, spec in space.items() if not in_space(own[n], spec)]
            assert not outside, f"{name}: {outside} outside the search space"


def test_the_tune_command_writes_its_trials_over_the_seeds(
    encoded_tiny, tmp_path, monkeypatch, capsys
):
    from deepfm_rec.cli import main

    monkeypatch.chdir(Path(__file__).parents[1])  # the project's config is the base
    out = tmp_path / "tune.tsv"
    main(
        [
            "tune",
            "--model",
            "fm",
            "--trials",
            "2",
            "--seed",
            "3",
            "--seeds",
            "5",
            "6",
            "--encoded",
            str(encoded_tiny.folder),
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    table = pd.read_csv(out, sep="\t", dtype={"kept_epochs": str})
    assert list(table["trial"].sort_values()) == [0, 1]
    assert all(len(kept.split("/")) == 2 for kept in table["kept_epochs"])
    assert f"all 2 trials, best first: {out}" in capsys.readouterr().out


def test_the_config_space_overrides_the_built_in_ranges():
    schema = yaml.safe_load(
        (Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml").read_text()
    )
    space = section_space(
        "deepfm.stars",
        {"lr": {"log": [0.001, 0.002]}, "mlp": None, "patience": {"int": [1, 4]}},
        schema,
    )
    assert space["lr"] == {"log": [0.001, 0.002]} and space["patience"] == {"int": [1, 4]}
    assert "mlp" not in space and space["l2"] == SPACE["l2"]
    assert kind_of(space["patience"]) == ("int", [1, 4])
    # a bound the section's schema refuses, and an empty range, name the key
    with pytest.raises(DataError, match=r"tune.space.dropout.*2"):
        section_space("deepfm.stars", {"dropout": {"uniform": [0.0, 2]}}, schema)
    with pytest.raises(DataError, match=r"tune.space.lr.*empty"):
        section_space("deepfm.stars", {"lr": {"log": [0.01, 0.001]}}, schema)
