"""FM and DeepFM models, built from an encoded folder's meta."""

from __future__ import annotations

from torch import nn

from deepfm_rec.data.encoding import CATEGORICAL, DENSE, MULTI, Encoded, model_fields
from deepfm_rec.models.deepfm import DeepFM
from deepfm_rec.models.fm import FM

MODELS: dict[str, type[FM]] = {"fm": FM, "deepfm": DeepFM}


OBJECTIVES = ("stars", "ranking")


def build_model(
    name: str, meta: dict, *, fields: list[str] | None, objective: str, **hparams
) -> nn.Module:
    """The model `name` (fm, deepfm) over `fields` of `meta` (None: all), its bias at the
    train mean, `hparams` its constructor's settings (a config section's). `model.fields`
    are the field names in the order of its field vectors; `model.objective` what its
    score is: a rating in stars, or a ranking logit."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    chosen = model_fields(meta, fields)
    model = MODELS[name](
        [f["vocab_size"] for f in chosen if f["kind"] == CATEGORICAL],
        [f["vocab_size"] for f in chosen if f["kind"] == MULTI],
        sum(f["kind"] == DENSE for f in chosen),
        global_mean=meta["train_mean"],
        **hparams,
    )
    model.fields = [f["name"] for f in chosen]
    model.objective = objective
    return model


def attach_bags(model: nn.Module, encoded: Encoded) -> nn.Module:
    """Give `model` the bags of its multi-valued fields in `encoded` (the folder it trains
    on or was trained on) and sum them with its current weights (see BagSums); returns it."""
    multi = [f["name"] for f in model_fields(encoded.meta, model.fields) if f["kind"] == MULTI]
    model.embedding.attach(
        [(encoded.arrays[f"{m}.values"], encoded.arrays[f"{m}.offsets"]) for m in multi]
    )
    return model
