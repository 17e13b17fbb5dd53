"""Layers shared by the FM and DeepFM models.

Shapes: B batch size, F fields (Fc categorical + Fd dense + Fm multi-valued),
D embedding dim.
"""

from __future__ import annotations

import torch
from torch import nn

from deepfm_rec.data.batches import Batch


class FieldEmbedding(nn.Module):
    """One D-dim vector per field and row.

    A categorical field's vector is its code's embedding (all categorical fields share
    one table, offset per field, so a batch costs one lookup); a multi-valued field's
    is the mean of its codes' embeddings (an empty bag gives zeros); a dense field's is
    its value times a learned vector.

    Args:
        categorical: vocabulary sizes of the categorical fields (code 0 = unknown).
        multi: vocabulary sizes of the multi-valued fields.
        n_dense: number of dense fields.
        dim: D.
        init_std: std of the normal initialisation.
        sparse: the tables produce sparse gradients (rows the batch used only).
    """

    def __init__(
        self,
        categorical: list[int],
        multi: list[int],
        n_dense: int,
        dim: int,
        init_std: float,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        offsets = torch.tensor([0, *categorical[:-1]]).cumsum(0).to(torch.int32)
        self.register_buffer("offsets", offsets, persistent=False)
        self.categorical = nn.Embedding(sum(categorical), dim, sparse=sparse)
        self.multi = nn.ModuleList(
            nn.EmbeddingBag(size, dim, mode="mean", sparse=sparse) for size in multi
        )
        self.dense = nn.Parameter(torch.empty(n_dense, dim))
        for weight in (self.categorical.weight, self.dense, *(m.weight for m in self.multi)):
            nn.init.normal_(weight, std=init_std)
        self.num_fields = len(categorical) + len(multi) + n_dense

    def forward(self, batch: Batch) -> torch.Tensor:
        """Field vectors, float32 (B, F, D)."""
        parts = [self.categorical(batch.categorical + self.offsets)]  # (B, Fc, D)
        parts += [
            bag(values, offsets).unsqueeze(1)  # (B, 1, D)
            for bag, (values, offsets) in zip(self.multi, batch.bags, strict=True)
        ]
        parts.append(batch.dense.unsqueeze(2) * self.dense)  # (B, Fd, D)
        return torch.cat(parts, dim=1)  # (B, F, D)


class FactorizationMachine(nn.Module):
    """Rendle's pairwise term: sum over field pairs i<j of <v_i, v_j>, in O(F·D)."""

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """v: (B, F, D) field vectors -> (B,) the second-order term."""
        square_of_sum = v.sum(dim=1).pow(2)  # (B, D)
        sum_of_square = v.pow(2).sum(dim=1)  # (B, D)
        return 0.5 * (square_of_sum - sum_of_square).sum(dim=1)  # (B,)


class MultiLayerPerceptron(nn.Module):
    """Linear-ReLU-Dropout blocks, then a linear output of size 1."""

    def __init__(self, input_dim: int, hidden: list[int], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(input_dim, size), nn.ReLU(), nn.Dropout(dropout)]
            input_dim = size
        layers.append(nn.Linear(input_dim, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, input_dim) -> (B,)."""
        return self.mlp(x).squeeze(1)
