"""Factorization Machine: a rating in stars, or a ranking logit.

Rendle, "Factorization Machines", ICDM 2010.
"""

from __future__ import annotations

import torch
from torch import nn

from deepfm_rec.data.batches import Batch
from deepfm_rec.models.layers import FactorizationMachine, FieldEmbedding


class FM(nn.Module):
    """score = bias + sum_f w_f + sum_{i<j} <v_i, v_j>: a rating in stars for a model
    trained on stars, a logit for one trained for ranking (`objective`, build_model).

    Every argument is required: the config schema holds the study's values.

    Args:
        categorical, multi, n_dense: the fields (see FieldEmbedding).
        embed_dim: D.
        global_mean: initial bias, the train mean rating (stars).
        init_std: std of the embeddings' initialisation.
        sparse: embedding tables produce sparse gradients (for SparseAdam).
        pooling: how a multi-valued field's embeddings are pooled (see FieldEmbedding).
    """

    def __init__(
        self,
        categorical: list[int],
        multi: list[int],
        n_dense: int,
        *,
        embed_dim: int,
        global_mean: float,
        init_std: float,
        sparse: bool,
        pooling: str,
    ) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor(float(global_mean)))
        # One table row holds a value's first-order weight w and its vector v side by side,
        # so a batch costs one lookup (and, with sparse updates, one sparse gradient) per
        # table instead of two.
        self.embedding = FieldEmbedding(
            categorical, multi, n_dense, 1 + embed_dim, init_std, sparse=sparse, pooling=pooling
        )
        self.fm = FactorizationMachine()

    def score(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(score (B,): stars or a logit, the field rows (B, F, 1 + D): each field's
        first-order weight w and vector v side by side)."""
        wv = self.embedding(batch)  # (B, F, 1 + D)
        w, v = wv.split([1, wv.shape[2] - 1], dim=2)  # (B, F, 1), (B, F, D)
        return self.bias + w.sum(dim=(1, 2)) + self.fm(v), wv

    def forward(self, batch: Batch) -> torch.Tensor:
        """The score, float32 (B,): a predicted rating in stars (not clipped), or a
        ranking logit."""
        return self.score(batch)[0]

    grid_floats_per_pair = 1  # grid_scores holds one float per pair (its score)

    def grid_scores(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """The score of every pair (l, r), float32 (L, R): predicted ratings (unclipped,
        stars) for a star model, logits for a ranking one.

        left (L, F, 1 + D) and right (R, F, 1 + D) are field rows (FieldEmbedding's
        output) that split a pair's: pair (l, r) has left[l] + right[r], each field zero
        on one side (a user's fields on the left, a movie's on the right). The FM term then
        splits into a left part, a right part and the dot product of their summed
        vectors: one (L, D) × (D, R) matmul instead of L·R forward passes.
        """
        parts = []
        for side in (left, right):
            w, v = side.split([1, side.shape[2] - 1], dim=2)  # (N, F, 1), (N, F, D)
            # the side's own weights and pairs, and its summed vector (N, D)
            parts.append((w.sum(dim=(1, 2)) + self.fm(v), v.sum(dim=1)))
        (left_own, left_total), (right_own, right_total) = parts
        pairs = torch.addmm(right_own[None, :], left_total, right_total.T)  # (L, R): one pass
        return pairs.add_((self.bias + left_own)[:, None])
