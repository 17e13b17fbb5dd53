"""DeepFM: an FM and an MLP sharing the field embeddings.

Guo et al., "DeepFM: A Factorization-Machine based Neural Network for CTR
Prediction", IJCAI 2017 (here trained on star ratings with an MSE loss, or for ranking
against sampled negatives: deepfm_rec.objectives). The MLP's input may
lose whole field vectors in training (field dropout: Gal and Ghahramani's embedding
dropout, "A Theoretically Grounded Application of Dropout in Recurrent Neural
Networks", NeurIPS 2016, applied per field).
"""

from __future__ import annotations

import torch
from torch import nn

from deepfm_rec.data.batches import Batch
from deepfm_rec.models.fm import FM
from deepfm_rec.models.layers import MultiLayerPerceptron


class DeepFM(FM):
    """score = FM(x) + MLP(concat of the field vectors): stars or a logit, as FM's.

    Args:
        mlp: hidden layer sizes.
        dropout: dropout after each hidden layer.
        field_dropout: in training, the probability that a row's field vector is left out
            of the MLP's input (zeroed, the rest scaled by 1 / (1 - p)); the FM term sees
            every field. An MLP that cannot lean on any one field (a user's or a movie's
            own vector) learns what holds across them.
        Others as FM.
    """

    def __init__(
        self,
        categorical: list[int],
        multi: list[int],
        n_dense: int,
        *,
        embed_dim: int,
        global_mean: float,
        mlp: list[int],
        dropout: float,
        field_dropout: float,
        init_std: float,
        sparse: bool,
        pooling: str,
    ) -> None:
        super().__init__(
            categorical,
            multi,
            n_dense,
            embed_dim=embed_dim,
            global_mean=global_mean,
            init_std=init_std,
            sparse=sparse,
            pooling=pooling,
        )
        self.field_dropout = nn.Dropout1d(field_dropout)  # (B, F, D): zeroes whole fields
        self.mlp = MultiLayerPerceptron(self.embedding.num_fields * embed_dim, mlp, dropout)

    def mlp_input(self, field_rows: torch.Tensor) -> torch.Tensor:
        """The MLP's input: the field vectors of field rows (N, F, 1 + D), field dropout
        applied in training, concatenated (N, F·D)."""
        return self.field_dropout(field_rows[..., 1:]).flatten(start_dim=1)

    def score(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(score (B,), the field rows (B, F, 1 + D)), as FM.score."""
        fm, wv = super().score(batch)
        return fm + self.mlp(self.mlp_input(wv)), wv

    @property
    def grid_floats_per_pair(self) -> int:
        """grid_scores holds the first hidden layer per pair."""
        return self.mlp.mlp[0].out_features

    def grid_scores(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """FM.grid_scores plus the MLP. Its first layer is linear in the field vectors, so
        it is applied once per left and once per right row; the rest runs per pair. In
        training (a ranking loss's negatives), field dropout drops a field of a side row
        from all of that row's pairs."""
        first, rest = self.mlp.mlp[0], self.mlp.mlp[1:]
        hidden_left = first(self.mlp_input(left))  # (L, H), with the bias
        hidden_right = self.mlp_input(right) @ first.weight.T  # (R, H)
        hidden = hidden_left[:, None, :] + hidden_right[None, :, :]  # (L, R, H)
        return super().grid_scores(left, right) + rest(hidden).squeeze(2)
