"""FM and DeepFM rating models, built from an encoded folder's meta."""

from __future__ import annotations

from torch import nn

from deepfm_rec.data.encoding import CATEGORICAL, DENSE, MULTI
from deepfm_rec.models.deepfm import DeepFM
from deepfm_rec.models.fm import FM

MODELS: dict[str, type[FM]] = {"fm": FM, "deepfm": DeepFM}


def field_order(meta: dict) -> list[str]:
    """The field names in the order of the models' field vectors (see FieldEmbedding):
    categorical, then multi-valued, then dense fields."""
    kinds = (CATEGORICAL, MULTI, DENSE)
    return [f["name"] for kind in kinds for f in meta["fields"] if f["kind"] == kind]


def build_model(name: str, meta: dict, **hparams) -> nn.Module:
    """The model `name` (fm, deepfm) for the fields in `meta`, bias at the train mean."""
    fields = meta["fields"]
    return MODELS[name](
        [f["vocab_size"] for f in fields if f["kind"] == CATEGORICAL],
        [f["vocab_size"] for f in fields if f["kind"] == MULTI],
        sum(f["kind"] == DENSE for f in fields),
        global_mean=meta["train_mean"],
        **hparams,
    )
