"""DeepFM rating model: an FM and an MLP sharing the field embeddings.

Guo et al., "DeepFM: A Factorization-Machine based Neural Network for CTR
Prediction", IJCAI 2017 (here with an MSE loss on star ratings).
"""

from __future__ import annotations

import torch

from deepfm_rec.data.batches import Batch
from deepfm_rec.models.fm import FM
from deepfm_rec.models.layers import MultiLayerPerceptron


class DeepFM(FM):
    """rating = FM(x) + MLP(concat of the field vectors), in stars.

    Args:
        mlp: hidden layer sizes.
        dropout: dropout after each hidden layer.
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
        dropout: float = 0.0,
        init_std: float = 0.01,
        sparse: bool = False,
        pooling: str = "mean",
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
        self.mlp = MultiLayerPerceptron(self.embedding.num_fields * embed_dim, mlp, dropout)

    def score(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(prediction (B,) stars, the field rows (B, F, 1 + D)), as FM.score."""
        fm, wv = super().score(batch)
        v = wv[..., 1:].flatten(start_dim=1)  # the MLP's input (B, F·D)
        return fm + self.mlp(v), wv

    @property
    def grid_floats_per_pair(self) -> int:
        """grid_scores holds the first hidden layer per pair."""
        return self.mlp.mlp[0].out_features

    def grid_scores(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """FM.grid_scores plus the MLP. Its first layer is linear in the field vectors, so
        it is applied once per left and once per right row; the rest runs per pair."""
        first, rest = self.mlp.mlp[0], self.mlp.mlp[1:]
        hidden_left = first(left[..., 1:].flatten(start_dim=1))  # (L, H), with the bias
        hidden_right = right[..., 1:].flatten(start_dim=1) @ first.weight.T  # (R, H)
        hidden = hidden_left[:, None, :] + hidden_right[None, :, :]  # (L, R, H)
        return super().grid_scores(left, right) + rest(hidden).squeeze(2)
