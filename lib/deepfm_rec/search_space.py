"""What a hyperparameter search draws (each config section's settings and their ranges)
and how its trials are ranked.

A range is a one-key mapping, as config.yaml's `tune.space` writes it:

    lr:        {log: [0.0005, 0.01]}       log-uniform float in [low, high]
    dropout:   {uniform: [0.0, 0.9]}       uniform float
    patience:  {int: [1, 5]}               integer
    mlp:       {choice: [[8], [128, 64]]}  one of the values
    negatives: null                        not searched: the section's own value

`tune.space` overrides SPACES setting by setting, in every tuned section that has the
setting. This module imports neither torch nor Optuna: the workflow checks the config
with it when it starts.
"""

from __future__ import annotations

import difflib

import jsonschema
import pandas as pd

from deepfm_rec.data.errors import DataError

SHARED = {
    "lr": {"log": [0.0005, 0.01]},
    "l2": {"log": [0.001, 0.1]},
    "embed_dim": {"choice": [16, 32, 64]},
}
MLP = {
    "mlp": {"choice": [[8], [16], [32], [64], [128, 64], [128, 64, 32], [256, 128]]},
    "dropout": {"uniform": [0.0, 0.9]},
    "field_dropout": {"uniform": [0.0, 0.9]},
}
SPACES = {
    "fm.stars": SHARED,
    "deepfm.stars": SHARED | MLP,
    "fm.ranking": SHARED | {"negatives": {"choice": [256, 512, 1024]}},
    "deepfm.ranking": SHARED | MLP | {"negatives": {"choice": [256, 512]}},
}


def metric_name(objective: str) -> str:
    """The valid metric a search of `objective` scores its trials by."""
    return "valid_rmse" if objective == "stars" else "valid_ndcg"


def ranked(table: pd.DataFrame, objective: str) -> pd.DataFrame:
    """The complete trials of a trials table (trials.trials_table), best first."""
    done = table[table["state"] == "COMPLETE"]
    return done.sort_values(
        metric_name(objective), ascending=objective == "stars", ignore_index=True
    )


def kind_of(spec: dict) -> tuple[str, list]:
    """(kind, arguments) of a range: ("log", [low, high]), ("choice", [values]), ..."""
    ((kind, args),) = spec.items()
    return kind, args


def in_space(value, spec: dict) -> bool:
    """Whether `value` is one that the range `spec` can draw."""
    kind, args = kind_of(spec)
    if kind == "choice":
        return value in args
    if kind == "int" and not isinstance(value, int):
        return False
    return isinstance(value, int | float) and args[0] <= value <= args[1]


def section_space(section: str, overrides: dict, schema: dict) -> dict:
    """The ranges a search of `section` ("deepfm.stars") draws: SPACES[section] with
    `overrides` (config.yaml's tune.space) applied to the settings the section has.
    `schema` is the config schema, whose section properties check each bound and value."""
    model, objective = section.split(".")
    properties = schema["properties"][model]["properties"][objective]["properties"]
    space = dict(SPACES[section])
    for name, spec in overrides.items():
        if name not in properties:
            continue
        if spec is None:
            space.pop(name, None)
            continue
        kind, args = kind_of(spec)
        where = f"config key 'tune.space.{name}'"
        if kind != "choice" and not args[0] < args[1]:
            raise DataError(f"{where}: {kind} range [{args[0]}, {args[1]}] is empty")
        if kind == "log" and args[0] <= 0:
            raise DataError(f"{where}: a log range starts above 0, not at {args[0]}")
        check = jsonschema.Draft202012Validator(properties[name])
        for value in args:
            error = jsonschema.exceptions.best_match(check.iter_errors(value))
            if error is not None:
                raise DataError(f"{where}: {value!r} is no {section}.{name}: {error.message}")
        space[name] = spec
    return space


def check_l2(section: str, space: dict, l2) -> None:
    """A DataError if a search of `section` with `space` would leave its list of l2 values
    (the study's choice on valid, deepfm_rec.train.train_model) undrawn."""
    if "l2" not in space and isinstance(l2, list):
        raise DataError(
            f"config key '{section}.l2': {l2} is a choice the study makes, which a search "
            "does not; give the search one value, or let it draw l2 (tune.space.l2)"
        )


def check_tune(config: dict, schema: dict) -> None:
    """A DataError of one line if config.yaml's `tune` names a setting that no tuned
    section has, or a range its section's schema refuses, or leaves a section's list of
    l2 values (the study's choice on valid) undrawn."""
    tune = config["tune"]
    known = set()
    for section in tune["sections"]:
        model, objective = section.split(".")
        known |= set(schema["properties"][model]["properties"][objective]["properties"])
        space = section_space(section, tune["space"], schema)
        check_l2(section, space, config[model][objective]["l2"])
    for name in tune["space"]:
        if name not in known:
            near = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise DataError(
                f"config key 'tune.space.{name}': not a setting of the tuned sections "
                f"{tune['sections']}{hint}"
            )
