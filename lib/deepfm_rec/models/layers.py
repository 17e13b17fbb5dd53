"""Layers shared by the FM and DeepFM models.

Shapes: B batch size, F fields (Fc categorical + Fd dense + Fm multi-valued),
D embedding dim.
"""

from __future__ import annotations

import torch
from torch import nn

from deepfm_rec.data.batches import Batch

POOLING = ("mean", "sqrt")


class FieldEmbedding(nn.Module):
    """One D-dim vector per field and row.

    A categorical field's vector is its code's embedding; a multi-valued field's is its
    codes' embeddings pooled: their mean, or their sum over the square root of their
    count (SVD++'s |N(u)|^-1/2); an empty bag gives zeros. A row's left-out code (its own
    pair in an implicit-feedback bag) is taken out of the row's bag before pooling. A
    dense field's vector is its value times a learned vector. All categorical and
    multi-valued fields share one table (codes offset per field) and one EmbeddingBag
    call, a categorical code being a bag of one: a batch costs one lookup and, with
    sparse updates, one sparse gradient.

    Args:
        categorical: vocabulary sizes of the categorical fields (code 0 = unknown).
        multi: vocabulary sizes of the multi-valued fields.
        n_dense: number of dense fields.
        dim: D.
        init_std: std of the normal initialisation.
        sparse: the table produces sparse gradients (rows the batch used only).
        pooling: "mean" or "sqrt", how a bag's embeddings are pooled.
    """

    def __init__(
        self,
        categorical: list[int],
        multi: list[int],
        n_dense: int,
        dim: int,
        init_std: float,
        sparse: bool = False,
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        if pooling not in POOLING:
            raise ValueError(f"pooling must be one of {', '.join(POOLING)}, not {pooling!r}")
        sizes = [*categorical, *multi]
        offsets = torch.tensor([0, *sizes[:-1]]).cumsum(0).to(torch.int32)
        self.register_buffer("offsets", offsets, persistent=False)
        self.n_categorical = len(categorical)
        self.pooling = pooling
        self.table = nn.EmbeddingBag(sum(sizes), dim, mode="sum", sparse=sparse)
        self.dense = nn.Parameter(torch.empty(n_dense, dim))
        for weight in (self.table.weight, self.dense):
            nn.init.normal_(weight, std=init_std)
        self.num_fields = len(sizes) + n_dense

    def forward(self, batch: Batch) -> torch.Tensor:
        """Field vectors, float32 (B, F, D)."""
        b, fc = len(batch), self.n_categorical
        device = batch.categorical.device
        # bags in field-major order: field 0's B rows, field 1's B rows, ..., then each
        # multi-valued field's distinct bags, then its rows' left-out codes (bags of one)
        codes = [(batch.categorical + self.offsets[:fc]).T.flatten()]  # (Fc·B,)
        starts = [torch.arange(fc * b, dtype=torch.int32, device=device)]
        end = rows = fc * b  # codes and bags so far
        first_bag, first_leave = [], []
        for j, bags in enumerate(batch.bags):
            codes.append(bags.values + self.offsets[fc + j])
            starts.append(bags.starts + end)
            end += len(bags.values)
            first_bag.append(rows)
            rows += len(bags.starts)
        for j, bags in enumerate(batch.bags):
            first_leave.append(rows)
            if bags.leave is not None:
                codes.append(bags.leave + self.offsets[fc + j])
                starts.append(torch.arange(b, dtype=torch.int32, device=device) + end)
                end, rows = end + b, rows + b
        summed = self.table(torch.cat(codes), torch.cat(starts))  # (rows, D)
        vectors = [summed[: fc * b].view(fc, b, -1).transpose(0, 1)]  # (B, Fc, D)
        for j, bags in enumerate(batch.bags):
            distinct = summed[first_bag[j] : first_bag[j] + len(bags.starts)]  # (U, D)
            total = distinct[bags.inverse]  # (B, D)
            count = bags.lengths[bags.inverse].to(total.dtype)  # (B,)
            if bags.leave is not None:
                left_out = (bags.leave > 0).to(total.dtype)  # (B,)
                total = total - summed[first_leave[j] : first_leave[j] + b] * left_out[:, None]
                count = count - left_out
            count = count.clamp(min=1)
            scale = count.reciprocal() if self.pooling == "mean" else count.rsqrt()
            vectors.append((total * scale[:, None]).unsqueeze(1))  # (B, 1, D)
        vectors.append(batch.dense.unsqueeze(2) * self.dense)  # (B, Fd, D)
        return torch.cat(vectors, dim=1)  # (B, F, D)


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
