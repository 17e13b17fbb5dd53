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

    A categorical field's vector is its code's embedding; a multi-valued field's is the
    mean of its codes' embeddings (an empty bag gives zeros); a dense field's is its value
    times a learned vector. All categorical and multi-valued fields share one table
    (codes offset per field) and one EmbeddingBag call, a categorical code being a bag of
    one: a batch costs one lookup and, with sparse updates, one sparse gradient.

    Args:
        categorical: vocabulary sizes of the categorical fields (code 0 = unknown).
        multi: vocabulary sizes of the multi-valued fields.
        n_dense: number of dense fields.
        dim: D.
        init_std: std of the normal initialisation.
        sparse: the table produces sparse gradients (rows the batch used only).
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
        sizes = [*categorical, *multi]
        offsets = torch.tensor([0, *sizes[:-1]]).cumsum(0).to(torch.int32)
        self.register_buffer("offsets", offsets, persistent=False)
        self.n_categorical = len(categorical)
        self.table = nn.EmbeddingBag(sum(sizes), dim, mode="mean", sparse=sparse)
        self.dense = nn.Parameter(torch.empty(n_dense, dim))
        for weight in (self.table.weight, self.dense):
            nn.init.normal_(weight, std=init_std)
        self.num_fields = len(sizes) + n_dense

    def forward(self, batch: Batch) -> torch.Tensor:
        """Field vectors, float32 (B, F, D)."""
        b, fc = len(batch), self.n_categorical
        # bags in field-major order: field 0's B rows, field 1's B rows, ...
        codes = [(batch.categorical + self.offsets[:fc]).T.flatten()]  # (Fc·B,)
        starts = [torch.arange(fc * b, dtype=torch.int32, device=codes[0].device)]
        end = fc * b
        for j, (values, offsets) in enumerate(batch.bags):
            codes.append(values + self.offsets[fc + j])
            starts.append(offsets + end)
            end += len(values)
        pooled = self.table(torch.cat(codes), torch.cat(starts))  # ((Fc + Fm)·B, D)
        vectors = pooled.view(-1, b, pooled.shape[1]).transpose(0, 1)  # (B, Fc + Fm, D)
        dense = batch.dense.unsqueeze(2) * self.dense  # (B, Fd, D)
        return torch.cat([vectors, dense], dim=1)  # (B, F, D)


class FactorizationMachine(nn.Module):
    """Rendle's pairwise term: sum over field pairs i<j of <v_i, v_j>, in O(F·D)."""

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """v: (B, F, D) field vectors -> (B,) the second-order term."""
        # products, not pow(2): pow's backward costs several full-size ops more
        total = v.sum(dim=1)  # (B, D)
        return 0.5 * ((total * total).sum(dim=1) - (v * v).sum(dim=(1, 2)))  # (B,)


class MultiLayerPerceptron(nn.Module):
    """Linear-ReLU-Dropout blocks, then a linear output of size 1."""

    def __init__(self, input_dim: int, hidden: list[int], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(input_dim, size), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            input_dim = size
        layers.append(nn.Linear(input_dim, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, input_dim) -> (B,)."""
        return self.mlp(x).squeeze(1)
