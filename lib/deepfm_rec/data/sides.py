"""The two sides of a (user, movie) pair: each user's and each movie's fields by code.

A user's fields (owner "user" in meta.json: user, demographics, history) are the same on
all of the user's rows, and a movie's ("item": item, genres, raters, release year) on
all of the movie's, so one row per user code and one per item code give them. A pair's
own fields ("pair": tags, the rating's time) belong to neither side: an unrated pair has
none. A side batch holds one side's fields; the other side's and the pair's are code 0,
the empty bag and 0, and `mask` zeroes their vectors, so a pair's field rows are its
user side's plus its movie side's.

Shapes: N codes of one side, Fc categorical, Fd dense, Fm multi-valued fields, F all.
"""

from __future__ import annotations

import numpy as np
import torch

from deepfm_rec.data.batches import Batch
from deepfm_rec.data.encoding import CATEGORICAL, DENSE, MULTI, Encoded, model_fields

OWNERS = ("user", "item")


class Sides:
    """Per-code field tables of users and movies, for the fields a model sees.

    Args:
        encoded: the encoded folder.
        fields: the model's field names (its `fields`).
        device: where the tables live.
    """

    def __init__(self, encoded: Encoded, fields: list[str], device: torch.device | str) -> None:
        self.device = torch.device(device)
        chosen = model_fields(encoded.meta, fields)
        a = encoded.arrays
        user, item = np.asarray(a["user"]), np.asarray(a["item"])
        # Any row of a user (of a movie) gives its fields: they are the same on all its rows.
        row_of = {}
        for owner, codes in (("user", user), ("item", item)):
            rows = np.zeros(encoded.size(owner), dtype=np.int64)
            rows[codes] = np.arange(len(codes))
            row_of[owner] = rows

        def per_owner(kind: str, suffix: str, dtype) -> dict[str, torch.Tensor]:
            """For user and item: the fields of `kind` of each code, 0 for the others'."""
            names = [f for f in chosen if f["kind"] == kind]
            tables = {}
            for owner, rows in row_of.items():
                table = np.zeros((len(rows), len(names)), dtype=dtype)  # (N, fields of kind)
                for j, f in enumerate(names):
                    if f["owner"] == owner:
                        table[:, j] = np.asarray(a[f["name"] + suffix])[rows]
                table[0] = 0  # code 0 has no row
                tables[owner] = torch.from_numpy(table).to(self.device)
            return tables

        self.categorical = per_owner(CATEGORICAL, "", np.int32)  # (N, Fc)
        self.dense = per_owner(DENSE, "", np.float32)  # (N, Fd)
        self.bag = per_owner(MULTI, ".bag", np.int32)  # (N, Fm)
        owners = [f["owner"] for f in chosen]
        # (F,) bool: the fields of each side
        self.mask = {o: torch.tensor([w == o for w in owners], device=self.device) for o in OWNERS}
        self.pair_fields = [f["name"] for f in chosen if f["owner"] not in OWNERS]

    def batch(self, owner: str, codes: torch.Tensor) -> Batch:
        """The side batch of users (owner "user") or movies ("item") by code (int64 (N,))."""
        return Batch(
            categorical=self.categorical[owner][codes],  # (N, Fc)
            dense=self.dense[owner][codes],  # (N, Fd)
            bag=self.bag[owner][codes],  # (N, Fm)
            leave=None,
            label=torch.zeros(len(codes), device=self.device),
        )

    def vectors(self, embedding: torch.nn.Module, owner: str, codes: torch.Tensor):
        """Field rows (N, F, ·) of one side by code (a model's FieldEmbedding output), zero
        in the other side's and the pair's fields."""
        return embedding(self.batch(owner, codes)) * self.mask[owner][:, None]
